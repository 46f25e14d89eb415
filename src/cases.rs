//! Expectation files: the format `emrfs-rolemap test` reads to unit-test a security configuration.
//!
//! ```json
//! {"fallback_role": "arn:aws:iam::123456789012:role/EMR_EC2_DefaultRole",
//!  "cases": [{"name": "analysts read the lake", "user": "alice", "groups": ["analysts"],
//!             "path": "s3://lake/curated/t1/", "expect": {"decision": "mapping", "mapping_index": 2}}]}
//! ```
//!
//! A case may say `"groups_from": "os"` instead of giving `groups`: the user's groups are then looked up
//! in the operating system ([`Case::spec`]).
//!
//! Every key given in `expect` must hold; keys left out are not checked. The same
//! [`Case::mismatches`] checks answers of the compiled and the reference resolver, so the conformance
//! suite uses it too.

use serde::{Deserialize, Deserializer};

use crate::config::{IdentifierType, ResolverOptions, RoleArn};
use crate::diagnostics::Escaped;
use crate::resolve::{Decision, Request, RequestSpec, Resolution};
use crate::s3path::S3PathError;

/// A file of test cases.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseFile {
    /// The fallback role that fallback resolutions report (and that `expect.role` compares with).
    #[serde(default)]
    pub fallback_role: Option<String>,
    /// The cases, run in order.
    pub cases: Vec<Case>,
}

impl CaseFile {
    /// Reads a case file; the error gives the line and column of the problem.
    pub fn from_json(text: &str) -> Result<CaseFile, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The options to run the cases with: `given`, reporting the file's `fallback_role` on a fallback
    /// unless `given` names one. Fails, saying which two roles differ, when both name one and they
    /// differ, or when the file's role is not a role ARN.
    pub fn options(&self, given: &ResolverOptions) -> Result<ResolverOptions, String> {
        let Some(in_file) = &self.fallback_role else { return Ok(given.clone()) };
        let role = RoleArn::parse(in_file)
            .map_err(|e| format!("the cases file's `fallback_role` `{}` is not a role ARN: {e}", Escaped(in_file)))?;
        match given.fallback_role() {
            Some(given_role) if *given_role != role => Err(format!(
                "the fallback role `{given_role}` differs from the cases file's `fallback_role` `{}`; give one",
                Escaped(in_file)
            )),
            Some(_) => Ok(given.clone()),
            None => Ok(given.clone().with_fallback_role(Some(role))),
        }
    }
}

/// One request and what its resolution must be.
// `user`, `groups` and `path` repeat `RequestSpec`'s fields: `#[serde(flatten)]` would still reject
// unknown keys, but at the end of the case without the list of expected keys, and would report a
// wrong type in the request's fields there too, not at the value.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// A name for reports; defaults to the case's position.
    #[serde(default)]
    pub name: Option<String>,
    /// The Hadoop user.
    #[serde(default)]
    pub user: Option<String>,
    /// The user's groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The S3 location.
    #[serde(default)]
    pub path: Option<String>,
    /// Where the groups come from: `"request"` (the default: `groups`) or `"os"` (the operating
    /// system's groups of `user`, as the server looks them up; then `groups` must be left out).
    #[serde(default)]
    groups_from: GroupsFrom,
    /// What the resolution must be.
    expect: Expectation,
}

/// A case's `groups_from`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum GroupsFrom {
    #[default]
    Request,
    Os,
}

impl Case {
    /// The request this case describes; fails when `path` is not an S3 location. The groups are the
    /// case's `groups`: for a case with `"groups_from": "os"`, see [`spec`](Self::spec).
    pub fn request(&self) -> Result<Request<'_>, S3PathError> {
        Request::parse(self.user.as_deref(), &self.groups, self.path.as_deref())
    }

    /// The case's request fields, with the user's groups looked up in the operating system when the case
    /// says `"groups_from": "os"` ([`RequestSpec::from_os`]). Fails, saying why, when such a case has no
    /// `user`, also gives `groups`, or names a user the system does not know.
    pub fn spec(&self) -> Result<RequestSpec, String> {
        let groups = match self.groups_from {
            GroupsFrom::Request => self.groups.clone(),
            GroupsFrom::Os => {
                let Some(user) = &self.user else {
                    return Err("`groups_from: os` needs the case's `user`".to_owned());
                };
                if !self.groups.is_empty() {
                    return Err(
                        "a case with `groups_from: os` takes its groups from the system: leave out `groups`".into()
                    );
                }
                RequestSpec::from_os(Some(user))?.groups
            }
        };
        Ok(RequestSpec { user: self.user.clone(), groups, path: self.path.clone() })
    }

    /// The case's name, or `case N` for the case at 0-based position `position`.
    pub fn display_name(&self, position: usize) -> String {
        self.name.clone().unwrap_or_else(|| format!("case {position}"))
    }

    /// Each way `resolution` differs from what the case expects, as `field: expected X, got Y`; empty
    /// when the case holds.
    pub fn mismatches(&self, resolution: &Resolution<'_>) -> Vec<String> {
        self.expect.mismatches(resolution)
    }
}

/// The fields of a resolution that a case pins down; `None` means "not checked".
///
/// For `role`, `mapping_index`, `identifier_type` and `identifier`, an explicit JSON `null` expects
/// the field to be absent (as on a fallback).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    /// `mapping` or `fallback`.
    #[serde(default)]
    decision: Option<Decision>,
    /// The role ARN, or `null`.
    #[serde(default, deserialize_with = "present")]
    role: Option<Option<String>>,
    /// The deciding mapping's index, or `null`.
    #[serde(default, deserialize_with = "present")]
    mapping_index: Option<Option<usize>>,
    /// The deciding mapping's identifier type, or `null`.
    #[serde(default, deserialize_with = "present")]
    identifier_type: Option<Option<IdentifierType>>,
    /// The identifier that matched, or `null`.
    #[serde(default, deserialize_with = "present")]
    identifier: Option<Option<String>>,
}

/// Tells a key given as `null` (`Some(None)`) from a key left out (`None`, through `#[serde(default)]`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(deserializer).map(Some)
}

impl Expectation {
    /// Each way `resolution` differs from this expectation, as `field: expected X, got Y`; empty when it holds.
    fn mismatches(&self, resolution: &Resolution<'_>) -> Vec<String> {
        let mapping = resolution.mapping();
        let mut out = Vec::new();
        let mut compare = |field: &str, expected: Option<String>, actual: Option<String>| {
            if expected != actual {
                let show = |v: Option<String>| v.map_or_else(|| "null".to_owned(), |v| format!("`{v}`"));
                out.push(format!("{field}: expected {}, got {}", show(expected), show(actual)));
            }
        };
        if let Some(decision) = self.decision {
            compare("decision", Some(decision.as_str().to_owned()), Some(resolution.decision().to_owned()));
        }
        if let Some(role) = &self.role {
            compare("role", role.clone(), resolution.role().map(|r| r.to_string()));
        }
        if let Some(index) = self.mapping_index {
            compare("mapping_index", index.map(|i| i.to_string()), mapping.map(|m| m.index.to_string()));
        }
        if let Some(kind) = self.identifier_type {
            compare("identifier_type", kind.map(|k| k.to_string()), mapping.map(|m| m.identifier_type.to_string()));
        }
        if let Some(identifier) = &self.identifier {
            compare("identifier", identifier.clone(), mapping.map(|m| m.identifier.to_owned()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_absent_keys_differ() {
        let e: Expectation = serde_json::from_str(r#"{"role": null}"#).unwrap();
        assert_eq!(e.role, Some(None));
        assert_eq!(e.identifier, None);
    }

    #[test]
    fn unknown_keys_are_errors() {
        let err = CaseFile::from_json(r#"{"cases": [{"expect": {"decison": "fallback"}}]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `decison`"), "{err}");
    }

    #[test]
    fn groups_from_os_needs_a_user_and_no_groups() {
        let file = CaseFile::from_json(
            r#"{"cases": [{"user": "root", "groups_from": "os", "expect": {}},
                          {"groups_from": "os", "expect": {}},
                          {"user": "root", "groups": ["g"], "groups_from": "os", "expect": {}},
                          {"user": "root", "groups": ["g"], "groups_from": "request", "expect": {}}]}"#,
        )
        .unwrap();
        let specs: Vec<_> = file.cases.iter().map(Case::spec).collect();
        #[cfg(unix)]
        assert_eq!(specs[0].as_ref().unwrap().groups.first().map(String::as_str), Some("root"));
        assert!(specs[1].as_ref().unwrap_err().contains("needs the case's `user`"), "{specs:?}");
        assert!(specs[2].as_ref().unwrap_err().contains("leave out `groups`"), "{specs:?}");
        assert_eq!(specs[3].as_ref().unwrap().groups, ["g"]);
        assert!(CaseFile::from_json(r#"{"cases": [{"groups_from": "ldap", "expect": {}}]}"#).is_err());
    }

    #[test]
    fn reports_each_mismatch() {
        let e: Expectation = serde_json::from_str(r#"{"decision": "mapping", "mapping_index": 3}"#).unwrap();
        let got = e.mismatches(&Resolution::Fallback { role: None });
        assert_eq!(got, vec!["decision: expected `mapping`, got `fallback`", "mapping_index: expected `3`, got null"]);
    }
}
