//! `emrfs-rolemap credentials`: resolves one request, fetches the decided role's credentials (STS
//! AssumeRole for a mapping, the base credentials for a fallback) and prints them in the AWS
//! `credential_process` format, so that the tool can back a profile in `~/.aws/config`.
//!
//! Exit status: 0 with the credentials on standard output; 1 when STS refuses or fails (the message
//! names the endpoint, the role and what STS said); 2 for unusable input.

use std::io::{self, Write};
use std::process::ExitCode;

use clap::Args;
use emrfs_rolemap::Escaped;
use emrfs_rolemap::credentials::{
    AssumeRoleSettings, Broker, CacheConfig, CredentialCache, StsSource, StsSourceConfig,
};

use super::source::AwsArgs;
use super::{ConfigArgs, EscapedLines, RequestArgs, Unusable, load};

/// The async runtime `builder` makes, with every driver (I/O, time) enabled.
pub(crate) fn runtime(mut builder: tokio::runtime::Builder) -> Result<tokio::runtime::Runtime, Unusable> {
    builder.enable_all().build().map_err(|e| Unusable(format!("cannot start the async runtime: {e}")))
}

/// Where to get credentials and how to assume the role.
#[derive(Args)]
pub struct StsArgs {
    /// The STS endpoint URL (a VPC endpoint, an emulator); default: --endpoint-url, then
    /// `AWS_ENDPOINT_URL_STS`, `AWS_ENDPOINT_URL`, the profile's, else the region's.
    #[arg(long, value_name = "URL")]
    sts_endpoint: Option<String>,
    /// The role session name template; `{user}` and `{group}` are replaced.
    #[arg(long, value_name = "TEMPLATE", default_value = AssumeRoleSettings::DEFAULT_SESSION_NAME)]
    session_name: String,
    /// The session duration in seconds, 900 to 43200.
    #[arg(long, value_name = "SECONDS", default_value_t = AssumeRoleSettings::DEFAULT_DURATION_SECONDS)]
    duration: u32,
    /// The external ID that the roles' trust policies require.
    #[arg(long, value_name = "ID")]
    external_id: Option<String>,
    /// Set SourceIdentity to the user, for CloudTrail.
    #[arg(long)]
    source_identity: bool,
}

/// The `credential_process` output, version 1.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessCredentials<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    session_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
}

/// Runs the command for `request` against the configuration of `config`. Everything the user can get
/// wrong is checked before the first network call (to EMR when the configuration lives there).
pub fn run(config: &ConfigArgs, request: &RequestArgs, args: &StsArgs) -> Result<ExitCode, Unusable> {
    let settings = args.settings()?;
    let spec = request.spec()?;
    let parsed = RequestArgs::parse(&spec)?;
    let sts_config = args.source_config(&config.source.aws)?;
    let document = config.source.document()?;
    let resolver = load(&document, config.options(&document)?)?;

    let fetched = runtime(tokio::runtime::Builder::new_current_thread())?.block_on(async {
        let source = StsSource::new(sts_config).await?;
        let broker = Broker::new(CredentialCache::new(source, CacheConfig::default()), settings)?;
        let principal = resolver.prepare(parsed.user, parsed.groups);
        Ok::<_, Unusable>(broker.access(&principal, parsed.path.as_ref()).await.map(|a| a.credentials))
    })?;
    let credentials = match fetched {
        Ok(credentials) => credentials,
        Err(error) => {
            let _ = writeln!(io::stderr(), "error: {}", EscapedLines(&error.to_string()));
            return Ok(ExitCode::from(1));
        }
    };
    let output = ProcessCredentials {
        version: 1,
        access_key_id: credentials.access_key_id(),
        secret_access_key: credentials.secret_access_key(),
        session_token: credentials.session_token(),
        expiration: credentials.expiration_rfc3339(),
    };
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &output)?;
    writeln!(out)?;
    Ok(ExitCode::SUCCESS)
}

impl StsArgs {
    /// The AssumeRole settings, checked against STS limits.
    pub fn settings(&self) -> Result<AssumeRoleSettings, Unusable> {
        let mut settings = AssumeRoleSettings::default().with_session_name(&self.session_name).map_err(|e| {
            Unusable(format!("invalid --session-name `{}`: {}", Escaped(&self.session_name), Escaped(&e.to_string())))
        })?;
        settings.duration_seconds = self.duration;
        settings.external_id = self.external_id.clone();
        settings.source_identity = self.source_identity;
        settings.validate()?;
        Ok(settings)
    }

    /// Where the STS source gets its endpoint (`--sts-endpoint`, else as every AWS call of the run), region
    /// and base credentials; checked, not yet connected.
    pub fn source_config(&self, aws: &AwsArgs) -> Result<StsSourceConfig, Unusable> {
        aws.source_config(self.sts_endpoint.as_deref())
    }
}
