//! `emrfs-rolemap policy`: the IAM policies around the role mappings; and the instance-profile flags of
//! `check`.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use emrfs_rolemap::policy::{InstanceProfileArn, PolicyDocument};
use emrfs_rolemap::{Diagnostic, Escaped, ResolverOptions, RoleArn, SecurityConfiguration};

use crate::{Format, Unusable, read_config_bytes, usable};

#[derive(Subcommand)]
pub(crate) enum PolicyCommand {
    /// The trust policy each mapped role needs so that the instance-profile role can assume it.
    Trust {
        /// The security configuration (any accepted form); `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        config: String,
        /// The role of the cluster's EC2 instance profile, which EMRFS calls AssumeRole with.
        #[arg(long, value_name = "ARN")]
        instance_profile_role: String,
        /// Also allow `sts:SetSourceIdentity` (when EMRFS sets a source identity).
        #[arg(long)]
        source_identity: bool,
        /// `json` (the default): exactly the JSON, for tools; `text`: a `#` header line above each.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// The identity policy of the instance-profile role: `sts:AssumeRole` on exactly the mapped roles.
    Assume {
        /// The security configuration (any accepted form); `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        config: String,
        /// Also allow `sts:SetSourceIdentity` (roles in other accounts need it on both sides).
        #[arg(long)]
        source_identity: bool,
        /// `json` (the default): exactly the JSON, for tools; `text`: a `#` header line above each.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
    /// The inline policy that lets cluster creators pass the cluster's roles, and only those.
    PassRole {
        /// The EMR service role: `NAME` or `PATH/NAME`.
        #[arg(long, value_name = "NAME", default_value = PolicyDocument::DEFAULT_SERVICE_ROLE)]
        service_role: String,
        /// The role of the EC2 instance profile: `NAME` or `PATH/NAME`.
        #[arg(long, value_name = "NAME", default_value = PolicyDocument::DEFAULT_EC2_ROLE)]
        ec2_role: String,
        /// The automatic-scaling role: `NAME` or `PATH/NAME`.
        #[arg(long, value_name = "NAME", default_value = PolicyDocument::DEFAULT_AUTOSCALING_ROLE)]
        autoscaling_role: String,
        /// The 12-digit account of the roles (default: any account, `*`).
        #[arg(long, value_name = "ID")]
        account: Option<String>,
        /// `json` (the default): exactly the JSON, for tools; `text`: a `#` header line above each.
        #[arg(long, value_enum, default_value_t = Format::Json)]
        format: Format,
    },
}

/// `check --instance-profile ARN --instance-profile-role ARN`.
#[derive(Args)]
pub(crate) struct InstanceProfileArgs {
    /// The cluster's EC2 instance profile ARN, checked against --instance-profile-role.
    #[arg(long, value_name = "ARN", requires = "instance_profile_role")]
    instance_profile: Option<String>,
    /// The role that instance profile holds.
    #[arg(long, value_name = "ARN", requires = "instance_profile")]
    instance_profile_role: Option<String>,
}

impl InstanceProfileArgs {
    /// The errors about the instance profile and its role; none when the flags are not given.
    pub(crate) fn mismatches(&self) -> Result<Vec<Diagnostic>, Unusable> {
        let (Some(profile), Some(role)) = (&self.instance_profile, &self.instance_profile_role) else {
            return Ok(Vec::new());
        };
        let profile = InstanceProfileArn::parse(profile).map_err(|e| {
            let help = e.help().map(|h| format!("; {h}")).unwrap_or_default();
            Unusable(format!("invalid --instance-profile `{}`: {e}{help}", Escaped(profile)))
        })?;
        let role = role_arn("--instance-profile-role", role)?;
        Ok(profile.mismatches(&role))
    }
}

fn role_arn(flag: &str, text: &str) -> Result<RoleArn, Unusable> {
    RoleArn::parse(text).map_err(|e| Unusable(format!("invalid {flag} `{}`: {e}; {}", Escaped(text), e.help())))
}

/// Reads a configuration that must have no errors (warnings do not matter to its policies).
fn configuration(file: &str) -> Result<SecurityConfiguration, Unusable> {
    usable(&read_config_bytes(file)?, &ResolverOptions::default(), if file == "-" { "<stdin>" } else { file })
}

pub(crate) fn run(command: PolicyCommand) -> Result<ExitCode, Unusable> {
    let mut out = io::stdout().lock();
    match command {
        PolicyCommand::Trust { config, instance_profile_role, source_identity, format } => {
            let role = role_arn("--instance-profile-role", &instance_profile_role)?;
            let config = configuration(&config)?;
            let policies = PolicyDocument::trust(&config, &role, source_identity)?;
            match format {
                Format::Json => {
                    // Documents serialize field by field, so `Version` stays first whatever the map type.
                    let by_role: BTreeMap<&str, &PolicyDocument> =
                        policies.iter().map(|(arn, document)| (arn.as_str(), document)).collect();
                    serde_json::to_writer_pretty(&mut out, &by_role)?;
                    writeln!(out)?;
                }
                Format::Text => {
                    for (n, (arn, document)) in policies.iter().enumerate() {
                        let separator = if n == 0 { "" } else { "\n" };
                        writeln!(out, "{separator}# trust policy of {arn}\n{document}")?;
                    }
                }
            }
        }
        PolicyCommand::Assume { config, source_identity, format } => {
            let config = configuration(&config)?;
            let document = PolicyDocument::assume(&config, source_identity);
            let roles = document.resources().count();
            let header =
                format!("identity policy of the instance-profile role: AssumeRole on the {roles} mapped role(s)");
            print(&mut out, format, &header, &document)?;
        }
        PolicyCommand::PassRole { service_role, ec2_role, autoscaling_role, account, format } => {
            let document = PolicyDocument::pass_role(&service_role, &ec2_role, &autoscaling_role, account.as_deref())?;
            let header = "inline policy of cluster creators: PassRole on the cluster's roles, to their services only";
            print(&mut out, format, header, &document)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints one document: as JSON, or after a `#` header line.
fn print(out: &mut impl Write, format: Format, header: &str, document: &PolicyDocument) -> Result<(), Unusable> {
    match format {
        Format::Json => writeln!(out, "{}", serde_json::to_string_pretty(document)?)?,
        Format::Text => writeln!(out, "# {header}\n{document}")?,
    }
    Ok(())
}
