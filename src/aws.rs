//! Security configurations read from where they live (feature `emr`): from Amazon EMR by name
//! (`DescribeSecurityConfiguration`), or as a cluster's (`DescribeCluster`, then its security
//! configuration), with the cluster's EC2 instance profile and that profile's role from IAM
//! (`GetInstanceProfile`): [`EmrConfiguration`].
//!
//! Every call is made with the settings of a [`StsSourceConfig`] — its region, base credentials,
//! timeouts and retries, as the STS calls are — at its `endpoint_url` when it has one, else where the
//! SDK's own configuration points (`AWS_ENDPOINT_URL_EMR`, `AWS_ENDPOINT_URL_IAM`, `AWS_ENDPOINT_URL`,
//! a profile's `endpoint_url`), else at the region's endpoints. A failure is a [`SourceError`] whose
//! message names the service and endpoint, the call, the name or cluster ID, and what AWS said.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use emrfs_rolemap::aws::EmrConfiguration;
//! use emrfs_rolemap::credentials::StsSourceConfig;
//! use emrfs_rolemap::{ResolverBuilder, ResolverOptions, SecurityConfiguration};
//!
//! let fetched = EmrConfiguration::fetch_cluster(&StsSourceConfig::new("us-east-1"), "j-1K48XXXXXXHCB").await?;
//! let options = ResolverOptions::new().with_fallback_role(fetched.instance_profile_role().cloned());
//! let config = SecurityConfiguration::from_slice_with(fetched.document(), &options)
//!     .map_err(|d| d.render(&fetched.label()))?;
//! let resolver = ResolverBuilder::with_options(options).build(&config)?;
//! // Later: the same configuration as EMR has it now (a new document, another security configuration).
//! let _now = fetched.refresh().await?;
//! # Ok(()) }
//! ```

use std::sync::Arc;

use crate::config::RoleArn;
use crate::credentials::{Calls, ErrorKind, SourceError, StsSourceConfig, base_provider, endpoint_url, shared_config};
use crate::diagnostics::Escaped;
use crate::policy::InstanceProfileArn;

/// Where EMRFS role mappings sit in a security configuration document.
const ROLE_MAPPINGS: &str = "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings";

/// A security configuration as Amazon EMR holds it: its name and document, and for one read through a
/// cluster, the cluster's ID, its EC2 instance profile and that profile's role (the role EMRFS falls
/// back to). It keeps the clients it was read with, so [`refresh`](Self::refresh) reads it again.
///
/// The document is EMR's own text, so diagnostics point inside it; [`label`](Self::label) names it in
/// them.
#[derive(Clone)]
pub struct EmrConfiguration {
    clients: Arc<Clients>,
    target: Target,
    name: String,
    document: Vec<u8>,
    cluster: Option<Cluster>,
}

/// What to read: a security configuration by name, or a cluster's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Name(String),
    Cluster(String),
}

/// What a cluster adds: its ID, its instance profile and the profile's role.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Cluster {
    id: String,
    instance_profile: InstanceProfileArn,
    role: RoleArn,
}

struct Clients {
    emr: aws_sdk_emr::Client,
    iam: aws_sdk_iam::Client,
    emr_calls: Calls,
    iam_calls: Calls,
}

impl std::fmt::Debug for EmrConfiguration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmrConfiguration")
            .field("emr", &self.clients.emr_calls.service())
            .field("iam", &self.clients.iam_calls.service())
            .field("name", &self.name)
            .field("cluster", &self.cluster)
            .field("document_bytes", &self.document.len())
            .finish()
    }
}

impl EmrConfiguration {
    /// Reads the security configuration named `name` (EMR `DescribeSecurityConfiguration`). Fails when
    /// the settings are invalid ([`StsSourceConfig::validate`], as an `invalid_request`), when EMR
    /// refuses or cannot be reached, or when the configuration holds no EMRFS role mappings.
    pub async fn fetch(aws: &StsSourceConfig, name: &str) -> Result<Self, SourceError> {
        Clients::new(aws).await?.read(Target::Name(name.to_owned())).await
    }

    /// Reads the security configuration of cluster `id` (EMR `DescribeCluster`, then
    /// `DescribeSecurityConfiguration`) and the role of its EC2 instance profile (IAM
    /// `GetInstanceProfile`). Fails as [`fetch`](Self::fetch) does, and when the cluster has no security
    /// configuration or no instance profile, or the profile holds no role.
    pub async fn fetch_cluster(aws: &StsSourceConfig, id: &str) -> Result<Self, SourceError> {
        Clients::new(aws).await?.read(Target::Cluster(id.to_owned())).await
    }

    /// Reads the same again with the same clients: the configuration as EMR holds it now (for a
    /// cluster, whichever security configuration the cluster has now).
    pub async fn refresh(&self) -> Result<Self, SourceError> {
        Arc::clone(&self.clients).read(self.target.clone()).await
    }

    /// The security configuration's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The security configuration document, as EMR returned it.
    pub fn document(&self) -> &[u8] {
        &self.document
    }

    /// What diagnostics and messages call it: `security configuration NAME (from EMR)`, or
    /// `security configuration NAME of cluster ID (from EMR)`.
    pub fn label(&self) -> String {
        match &self.cluster {
            None => format!("security configuration {} (from EMR)", self.name),
            Some(cluster) => format!("security configuration {} of cluster {} (from EMR)", self.name, cluster.id),
        }
    }

    /// The cluster it was read through, if any.
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster.as_ref().map(|c| c.id.as_str())
    }

    /// The cluster's EC2 instance profile, if it was read through a cluster.
    pub fn instance_profile(&self) -> Option<&InstanceProfileArn> {
        self.cluster.as_ref().map(|c| &c.instance_profile)
    }

    /// The role of the cluster's instance profile — the role EMRFS falls back to — if it was read
    /// through a cluster.
    pub fn instance_profile_role(&self) -> Option<&RoleArn> {
        self.cluster.as_ref().map(|c| &c.role)
    }
}

impl Clients {
    async fn new(aws: &StsSourceConfig) -> Result<Arc<Self>, SourceError> {
        aws.validate().map_err(|e| SourceError::invalid_request(e.to_string()))?;
        let shared = shared_config(aws, base_provider(aws).await).await;
        let emr_endpoint = endpoint_url(&shared, "EMR", aws.endpoint_url.as_deref());
        let iam_endpoint = endpoint_url(&shared, "IAM", aws.endpoint_url.as_deref());
        let mut emr = aws_sdk_emr::config::Builder::from(&shared);
        emr.set_endpoint_url(emr_endpoint.clone());
        let mut iam = aws_sdk_iam::config::Builder::from(&shared);
        iam.set_endpoint_url(iam_endpoint.clone());
        Ok(Arc::new(Clients {
            emr: aws_sdk_emr::Client::from_conf(emr.build()),
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            emr_calls: Calls::new("EMR", emr_endpoint.as_deref(), aws),
            iam_calls: Calls::new("IAM", iam_endpoint.as_deref(), aws),
        }))
    }

    async fn read(self: Arc<Self>, target: Target) -> Result<EmrConfiguration, SourceError> {
        let (name, cluster) = match &target {
            Target::Name(name) => (name.clone(), None),
            Target::Cluster(id) => {
                let (name, profile) = self.describe_cluster(id).await?;
                (name, Some((id, profile)))
            }
        };
        let (document, cluster) = match cluster {
            None => (self.security_configuration(&name).await?, None),
            Some((id, profile)) => {
                let (document, roles) =
                    tokio::join!(self.security_configuration(&name), self.instance_profile(id, &profile));
                let (instance_profile, role) = roles?;
                (document?, Some(Cluster { id: id.clone(), instance_profile, role }))
            }
        };
        Ok(EmrConfiguration { clients: self, target, name, document, cluster })
    }

    /// The cluster's security configuration name and instance profile.
    async fn describe_cluster(&self, id: &str) -> Result<(String, String), SourceError> {
        let what = format!("DescribeCluster of cluster `{}`", Escaped(id));
        let output = self.emr.describe_cluster().cluster_id(id).send().await;
        let output = output.map_err(|e| self.emr_calls.classify(&e, &what))?;
        let Some(cluster) = output.cluster() else {
            return Err(SourceError::new(
                ErrorKind::Other,
                format!("{} answered {what} without a cluster", self.emr_calls.service()),
            ));
        };
        let Some(name) = cluster.security_configuration().filter(|n| !n.is_empty()) else {
            return Err(SourceError::invalid_request(format!(
                "cluster `{}` has no security configuration, so no EMRFS role mappings: EMRFS uses its \
                 instance-profile role for every request",
                Escaped(id)
            )));
        };
        let profile =
            cluster.ec2_instance_attributes().and_then(|a| a.iam_instance_profile()).filter(|p| !p.is_empty());
        let Some(profile) = profile else {
            return Err(SourceError::invalid_request(format!(
                "cluster `{}` has no EC2 instance profile (DescribeCluster shows no `Ec2InstanceAttributes.IamInstanceProfile`)",
                Escaped(id)
            )));
        };
        Ok((name.to_owned(), profile.to_owned()))
    }

    /// The document of the security configuration `name`, which must hold EMRFS role mappings.
    async fn security_configuration(&self, name: &str) -> Result<Vec<u8>, SourceError> {
        let what = format!("DescribeSecurityConfiguration of `{}`", Escaped(name));
        let output = self.emr.describe_security_configuration().name(name).send().await;
        let output = output.map_err(|e| self.emr_calls.classify(&e, &what))?;
        let Some(document) = output.security_configuration() else {
            return Err(SourceError::new(
                ErrorKind::Other,
                format!("{} answered {what} without a document", self.emr_calls.service()),
            ));
        };
        // A document that is not JSON is reported by the diagnostics, with its position; one that is
        // JSON but has no role mappings is no role-mapping configuration at all.
        if let Ok(value) = serde_json::from_str::<serde_json::Value>(document)
            && value.pointer(ROLE_MAPPINGS).is_none()
        {
            return Err(SourceError::invalid_request(format!(
                "security configuration `{}` has no EMRFS role mappings (nothing at `{ROLE_MAPPINGS}`)",
                Escaped(name)
            )));
        }
        Ok(document.as_bytes().to_vec())
    }

    /// The ARNs of instance profile `profile` (a name or an ARN, as DescribeCluster gives it) of
    /// cluster `id` and of its role.
    async fn instance_profile(&self, id: &str, profile: &str) -> Result<(InstanceProfileArn, RoleArn), SourceError> {
        let profile_name = profile.rsplit('/').next().unwrap_or(profile);
        let what = format!("GetInstanceProfile of `{}` (cluster `{}`)", Escaped(profile_name), Escaped(id));
        let output = self.iam.get_instance_profile().instance_profile_name(profile_name).send().await;
        let output = output.map_err(|e| self.iam_calls.classify(&e, &what))?;
        let unusable = |detail: String| {
            SourceError::new(ErrorKind::Other, format!("{} answered {what} {detail}", self.iam_calls.service()))
        };
        let Some(found) = output.instance_profile() else {
            return Err(unusable("without an instance profile".to_owned()));
        };
        let arn = InstanceProfileArn::parse(found.arn())
            .map_err(|e| unusable(format!("with an invalid instance profile ARN `{}`: {e}", Escaped(found.arn()))))?;
        let Some(role) = found.roles().first() else {
            return Err(SourceError::invalid_request(format!(
                "instance profile `{}` of cluster `{}` holds no role, so EMRFS has no role to fall back to",
                Escaped(profile_name),
                Escaped(id)
            )));
        };
        let role = RoleArn::parse(role.arn())
            .map_err(|e| unusable(format!("with an invalid role ARN `{}`: {e}", Escaped(role.arn()))))?;
        Ok((arn, role))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use aws_sdk_emr::config::http::HttpResponse;
    use aws_smithy_mocks::{MockResponseInterceptor, Rule, RuleMode, create_mock_http_client, mock};
    use aws_smithy_types::body::SdkBody;

    use super::*;
    use crate::credentials::Credentials;

    /// Clients whose EMR answers come from `rules` (IAM is never asked here), with a 1 ms backoff.
    async fn clients(rules: &[&Rule]) -> Arc<Clients> {
        let mut config = StsSourceConfig::new("us-east-1").with_credentials(Credentials::new("AKID", "s", None, None));
        config.initial_backoff = Duration::from_millis(1);
        let shared = shared_config(&config, base_provider(&config).await).await;
        let interceptor =
            rules.iter().fold(MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny), |i, r| i.with_rule(r));
        let emr =
            aws_sdk_emr::config::Builder::from(&shared).http_client(create_mock_http_client()).interceptor(interceptor);
        let iam = aws_sdk_iam::config::Builder::from(&shared).http_client(create_mock_http_client());
        Arc::new(Clients {
            emr: aws_sdk_emr::Client::from_conf(emr.build()),
            iam: aws_sdk_iam::Client::from_conf(iam.build()),
            emr_calls: Calls::new("EMR", None, &config),
            iam_calls: Calls::new("IAM", None, &config),
        })
    }

    /// An EMR error answer as it comes over the wire (JSON protocol).
    fn answering(status: u16, code: &'static str, message: &'static str) -> Rule {
        mock!(aws_sdk_emr::Client::describe_security_configuration)
            .sequence()
            .http_response(move || {
                let body = format!(r#"{{"__type": "{code}", "message": "{message}"}}"#);
                let mut response = HttpResponse::new(status.try_into().unwrap(), SdkBody::from(body));
                response.headers_mut().insert("x-amzn-RequestId", "req-18");
                response
            })
            .repeatedly()
            .build()
    }

    async fn read(rule: &Rule) -> SourceError {
        clients(&[rule]).await.read(Target::Name("lake-sc".into())).await.unwrap_err()
    }

    #[tokio::test]
    async fn access_denied_is_not_retried_and_names_the_configuration() {
        let said = "User: arn:aws:iam::123456789012:user/ops is not authorized to perform: elasticmapreduce:DescribeSecurityConfiguration";
        let rule = answering(400, "AccessDeniedException", said);
        let error = read(&rule).await;
        assert_eq!((rule.num_calls(), error.kind), (1, ErrorKind::AccessDenied), "{error}");
        for part in [
            "EMR in region `us-east-1`",
            "DescribeSecurityConfiguration of `lake-sc`",
            "`AccessDeniedException`",
            said,
            "req-18",
        ] {
            assert!(error.message.contains(part), "`{part}` missing from: {error}");
        }
    }

    #[tokio::test]
    async fn throttling_is_retried_then_reported_as_throttling() {
        let rule = answering(400, "ThrottlingException", "Rate exceeded");
        let error = read(&rule).await;
        assert_eq!((rule.num_calls(), error.kind), (3, ErrorKind::Throttling), "{error}");
        assert!(error.message.contains("`lake-sc`") && error.message.contains("Rate exceeded"), "{error}");
    }

    #[tokio::test]
    async fn a_document_without_role_mappings_is_refused_and_one_that_is_not_json_is_kept() {
        for (document, refused) in [(r#"{"EncryptionConfiguration": {}}"#, true), ("{not json", false)] {
            let rule = mock!(aws_sdk_emr::Client::describe_security_configuration).then_output(move || {
                aws_sdk_emr::operation::describe_security_configuration::DescribeSecurityConfigurationOutput::builder()
                    .name("lake-sc")
                    .security_configuration(document)
                    .build()
            });
            let read = clients(&[&rule]).await.read(Target::Name("lake-sc".into())).await;
            match read {
                Err(error) => assert!(refused && error.message.contains("no EMRFS role mappings"), "{error}"),
                Ok(fetched) => {
                    assert!(!refused, "{document}");
                    assert_eq!(
                        (fetched.document(), fetched.label().as_str()),
                        (document.as_bytes(), "security configuration lake-sc (from EMR)")
                    );
                }
            }
        }
    }
}
