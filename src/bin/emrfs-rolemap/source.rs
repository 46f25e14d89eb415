//! Where a command's security configuration comes from: a file (`--config`), or EMR by name
//! (`--security-configuration`) or through a cluster (`--cluster-id`, which also gives the
//! instance-profile role); and the AWS settings of the run (`--region`, `--profile`, `--endpoint-url`).

use clap::Args;
#[cfg(feature = "emr")]
use emrfs_rolemap::aws::EmrConfiguration;
#[cfg(feature = "sts")]
use emrfs_rolemap::credentials::StsSourceConfig;

use crate::{Unusable, display_name, read_config_bytes};

/// One source of a security configuration; exactly one is required.
#[derive(Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(false)))]
pub(crate) struct SourceArgs {
    /// The security configuration file (any accepted form); `-` reads standard input.
    #[arg(long, value_name = "FILE", group = "source")]
    pub(crate) config: Option<String>,
    /// Read the security configuration named NAME from EMR (DescribeSecurityConfiguration).
    #[cfg(feature = "emr")]
    #[arg(long, value_name = "NAME", group = "source")]
    security_configuration: Option<String>,
    /// Read the security configuration of cluster ID from EMR (DescribeCluster), and its EC2 instance
    /// profile's role from IAM: the fallback role, and what `check` checks the profile against.
    #[cfg(feature = "emr")]
    #[arg(long, value_name = "ID", group = "source")]
    cluster_id: Option<String>,
    #[cfg(feature = "sts")]
    #[command(flatten)]
    pub(crate) aws: AwsArgs,
}

/// The AWS settings of every AWS call of the run, as the AWS CLI has them.
#[cfg(feature = "sts")]
#[derive(Args)]
pub(crate) struct AwsArgs {
    /// The AWS region; default: `AWS_REGION`, then `AWS_DEFAULT_REGION`.
    #[arg(long)]
    region: Option<String>,
    /// Take the base credentials (and endpoint settings) from this profile instead of the default chain
    /// (environment, profile, web identity, container, instance profile).
    #[arg(long, value_name = "NAME")]
    profile: Option<String>,
    /// Send every AWS call (EMR, IAM, STS) to URL; default: `AWS_ENDPOINT_URL_<SERVICE>`,
    /// `AWS_ENDPOINT_URL`, the profile's, else the region's endpoints. --sts-endpoint wins for STS.
    #[arg(long, value_name = "URL")]
    endpoint_url: Option<String>,
}

#[cfg(feature = "sts")]
impl AwsArgs {
    /// The settings of the AWS calls, with `endpoint` instead of `--endpoint-url` when one is given;
    /// checked, not yet connected.
    pub(crate) fn source_config(&self, endpoint: Option<&str>) -> Result<StsSourceConfig, Unusable> {
        let mut config = StsSourceConfig::new(self.region()?);
        config.endpoint_url = endpoint.or(self.endpoint_url.as_deref()).map(str::to_owned);
        if let Some(profile) = &self.profile {
            config = config.with_profile(profile);
        }
        config.validate()?;
        Ok(config)
    }

    /// `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`; never looked up over the network.
    fn region(&self) -> Result<String, Unusable> {
        let from_env = |name| std::env::var(name).ok().filter(|r| !r.is_empty());
        self.region
            .clone()
            .or_else(|| from_env("AWS_REGION"))
            .or_else(|| from_env("AWS_DEFAULT_REGION"))
            .ok_or_else(|| Unusable("no AWS region: give --region or set AWS_REGION".into()))
    }
}

/// A security configuration document and what to call it.
pub(crate) struct Document {
    /// The document's bytes.
    pub(crate) bytes: Vec<u8>,
    /// The name diagnostics and messages give it: the file, `<stdin>`, or the EMR label.
    pub(crate) name: String,
    /// What EMR said, for a document read from EMR.
    #[cfg(feature = "emr")]
    pub(crate) emr: Option<EmrConfiguration>,
}

impl Document {
    /// The configuration file `file` (`-`: standard input).
    pub(crate) fn file(file: &str) -> Result<Document, Unusable> {
        let name = display_name(file).to_owned();
        #[cfg(feature = "emr")]
        return Ok(Document { bytes: read_config_bytes(file)?, name, emr: None });
        #[cfg(not(feature = "emr"))]
        return Ok(Document { bytes: read_config_bytes(file)?, name });
    }

    /// What EMR (and IAM) said.
    #[cfg(feature = "emr")]
    pub(crate) fn from_emr(emr: EmrConfiguration) -> Document {
        Document { bytes: emr.document().to_vec(), name: emr.label(), emr: Some(emr) }
    }

    /// The role of the cluster's instance profile, for a document read through `--cluster-id`.
    #[cfg(feature = "emr")]
    pub(crate) fn instance_profile_role(&self) -> Option<&emrfs_rolemap::RoleArn> {
        self.emr.as_ref().and_then(EmrConfiguration::instance_profile_role)
    }

    #[cfg(not(feature = "emr"))]
    pub(crate) fn instance_profile_role(&self) -> Option<&emrfs_rolemap::RoleArn> {
        None
    }
}

impl SourceArgs {
    /// `--config -`: the configuration is read from standard input.
    pub(crate) fn is_stdin(&self) -> bool {
        self.config.as_deref() == Some("-")
    }

    /// Reads the document from its source; any failure makes the input unusable.
    pub(crate) fn document(&self) -> Result<Document, Unusable> {
        if let Some(file) = &self.config {
            return Document::file(file);
        }
        #[cfg(feature = "emr")]
        {
            let emr = crate::credentials_cmd::runtime(tokio::runtime::Builder::new_current_thread())?
                .block_on(self.fetch())?;
            Ok(Document::from_emr(emr))
        }
        #[cfg(not(feature = "emr"))]
        Err(Unusable("give --config FILE".into()))
    }

    /// Reads the configuration from EMR (and IAM), as `--security-configuration` or `--cluster-id`
    /// says.
    #[cfg(feature = "emr")]
    pub(crate) async fn fetch(&self) -> Result<EmrConfiguration, Unusable> {
        let aws = self.aws.source_config(None)?;
        match (&self.security_configuration, &self.cluster_id) {
            (Some(name), _) => fetch(&aws, EmrSource::Name(name)).await,
            (None, Some(id)) => fetch(&aws, EmrSource::Cluster(id)).await,
            (None, None) => Err(Unusable("give --config, --security-configuration or --cluster-id".into())),
        }
    }
}

/// A security configuration in EMR: by name, or the one of a cluster.
#[cfg(feature = "emr")]
#[derive(Clone, Copy)]
pub(crate) enum EmrSource<'a> {
    Name(&'a str),
    Cluster(&'a str),
}

/// Reads the configuration `source` from EMR (and IAM) with the settings `aws`.
#[cfg(feature = "emr")]
pub(crate) async fn fetch(aws: &StsSourceConfig, source: EmrSource<'_>) -> Result<EmrConfiguration, Unusable> {
    let fetched = match source {
        EmrSource::Name(name) => EmrConfiguration::fetch(aws, name).await,
        EmrSource::Cluster(id) => EmrConfiguration::fetch_cluster(aws, id).await,
    };
    fetched.map_err(|e| Unusable(format!("cannot read the security configuration from EMR: {e}")))
}
