//! IAM companion policies: every generated document parses as JSON with `"Version": "2012-10-17"` and
//! exactly the expected statements, `Sid`s, actions, principals, resources and conditions, from the
//! library and from `emrfs-rolemap policy`; bad input is refused; `check --instance-profile`.

mod support;

use std::process::Output;

use emrfs_rolemap::policy::{PolicyDocument, PolicyError};
use emrfs_rolemap::{RoleArn, SecurityConfiguration};
use serde_json::{Value, json};
use support::cli::run;

const MULTI: &str = "examples/configs/multi-team.json";
const INSTANCE_PROFILE_ROLE: &str = "arn:aws:iam::111122223333:role/EMR_EC2_DefaultRole";

fn json_stdout(output: &Output) -> Value {
    assert_eq!(output.status.code(), Some(0), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("the output is JSON")
}

/// The document as IAM reads it: its printed JSON, parsed.
fn parsed(document: &PolicyDocument) -> Value {
    serde_json::from_str(&document.to_string()).expect("a policy prints as JSON")
}

/// Checks what every policy document has, and returns its statements.
#[track_caller]
fn statements(policy: &Value) -> Vec<Value> {
    let mut keys: Vec<&String> = policy.as_object().expect("a policy is an object").keys().collect();
    keys.sort();
    assert_eq!(keys, ["Statement", "Version"], "{policy}");
    assert_eq!(policy["Version"], "2012-10-17");
    let statements = policy["Statement"].as_array().expect("statements are an array").clone();
    assert!(!statements.is_empty(), "{policy}");
    let mut sids: Vec<&str> =
        statements.iter().map(|s| s["Sid"].as_str().expect("every statement has a Sid")).collect();
    assert!(sids.iter().all(|sid| !sid.is_empty() && sid.chars().all(|c| c.is_ascii_alphanumeric())), "{sids:?}");
    sids.sort_unstable();
    sids.dedup();
    assert_eq!(sids.len(), statements.len(), "Sids are unique: {policy}");
    for s in &statements {
        assert_eq!(s["Effect"], "Allow", "{s}");
        let actions = s["Action"].as_array().expect("actions are an array");
        assert!(actions.iter().all(|a| a.as_str().is_some_and(|a| a.split_once(':').is_some())), "{s}");
    }
    statements
}

fn config(path: &str) -> SecurityConfiguration {
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).expect("readable");
    SecurityConfiguration::from_json(&text).expect("a valid example")
}

/// The distinct roles of a configuration, sorted: what the policies must name, computed independently.
fn distinct_roles(config: &SecurityConfiguration) -> Vec<String> {
    let mut roles: Vec<String> = config.mappings().iter().map(|m| m.role().to_string()).collect();
    roles.sort();
    roles.dedup();
    roles
}

/// A configuration that names one role in two mappings.
fn repeated_role() -> SecurityConfiguration {
    SecurityConfiguration::from_json(
        r#"{"RoleMappings": [
        {"Role": "arn:aws:iam::111122223333:role/b", "IdentifierType": "User", "Identifiers": ["u"]},
        {"Role": "arn:aws:iam::111122223333:role/a", "IdentifierType": "Group", "Identifiers": ["g"]},
        {"Role": "arn:aws:iam::111122223333:role/b", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]}
    ]}"#,
    )
    .expect("valid")
}

#[test]
fn trust_policies_let_the_instance_profile_role_assume_each_distinct_role() {
    let instance_profile_role = RoleArn::parse(INSTANCE_PROFILE_ROLE).expect("valid");
    for config in [config(MULTI), repeated_role()] {
        for source_identity in [false, true] {
            let policies =
                PolicyDocument::trust(&config, &instance_profile_role, source_identity).expect("same partition");
            let roles: Vec<String> = policies.iter().map(|(role, _)| role.to_string()).collect();
            assert_eq!(roles, distinct_roles(&config), "one document per distinct role, sorted");
            let actions = if source_identity {
                json!(["sts:AssumeRole", "sts:SetSourceIdentity"])
            } else {
                json!(["sts:AssumeRole"])
            };
            for (_, document) in &policies {
                let statements = statements(&parsed(document));
                assert_eq!(
                    statements,
                    [json!({"Sid": "TrustEmrfsInstanceProfileRole", "Effect": "Allow",
                            "Principal": {"AWS": INSTANCE_PROFILE_ROLE}, "Action": actions})]
                );
            }
        }
    }
}

#[test]
fn trust_across_partitions_is_refused() {
    let china = RoleArn::parse("arn:aws-cn:iam::111122223333:role/EMR_EC2_DefaultRole").expect("valid");
    let error = PolicyDocument::trust(&repeated_role(), &china, false).expect_err("partitions differ");
    assert!(matches!(error, PolicyError::PartitionMismatch { .. }));
    assert!(error.to_string().contains("cannot cross partitions"), "{error}");
}

#[test]
fn the_assume_policy_names_exactly_the_distinct_mapped_roles() {
    for config in [config(MULTI), config("examples/configs/aws-docs-example.json"), repeated_role()] {
        for source_identity in [false, true] {
            let statements = statements(&parsed(&PolicyDocument::assume(&config, source_identity)));
            let actions = if source_identity {
                json!(["sts:AssumeRole", "sts:SetSourceIdentity"])
            } else {
                json!(["sts:AssumeRole"])
            };
            assert_eq!(
                statements,
                [json!({"Sid": "AssumeEmrfsMappedRoles", "Effect": "Allow", "Action": actions,
                        "Resource": distinct_roles(&config)})]
            );
        }
    }
}

fn pass_role_statement(sid: &str, resource: &str, service: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Action": ["iam:PassRole"], "Resource": [resource],
           "Condition": {"StringEquals": {"iam:PassedToService": service}}})
}

#[test]
fn the_pass_role_policy_passes_each_cluster_role_to_its_service_only() {
    let defaults = statements(&parsed(
        &PolicyDocument::pass_role(
            PolicyDocument::DEFAULT_SERVICE_ROLE,
            PolicyDocument::DEFAULT_EC2_ROLE,
            PolicyDocument::DEFAULT_AUTOSCALING_ROLE,
            None,
        )
        .expect("valid"),
    ));
    assert_eq!(
        defaults,
        [
            pass_role_statement(
                "PassEmrServiceRole",
                "arn:aws:iam::*:role/EMR_DefaultRole",
                "elasticmapreduce.amazonaws.com"
            ),
            pass_role_statement(
                "PassEc2InstanceProfileRole",
                "arn:aws:iam::*:role/EMR_EC2_DefaultRole",
                "ec2.amazonaws.com"
            ),
            pass_role_statement(
                "PassAutoScalingRole",
                "arn:aws:iam::*:role/EMR_AutoScaling_DefaultRole",
                "application-autoscaling.amazonaws.com"
            ),
        ]
    );
    let custom =
        PolicyDocument::pass_role("service-role/EMR_Custom", "EMR_EC2_Custom", "scaling", Some("000011112222"));
    let resources: Vec<Value> =
        statements(&parsed(&custom.expect("valid"))).iter().map(|s| s["Resource"].clone()).collect();
    assert_eq!(
        resources,
        [
            json!(["arn:aws:iam::000011112222:role/service-role/EMR_Custom"]),
            json!(["arn:aws:iam::000011112222:role/EMR_EC2_Custom"]),
            json!(["arn:aws:iam::000011112222:role/scaling"]),
        ]
    );
}

#[test]
fn every_policy_command_prints_json_with_the_expected_statements() {
    let multi = config(MULTI);
    let trust = json_stdout(&run(&[
        "policy",
        "trust",
        "--config",
        MULTI,
        "--instance-profile-role",
        INSTANCE_PROFILE_ROLE,
        "--format",
        "json",
    ]));
    let by_role = trust.as_object().expect("an object from role ARN to document");
    assert_eq!(by_role.keys().cloned().collect::<Vec<_>>(), distinct_roles(&multi));
    for document in by_role.values() {
        assert_eq!(statements(document)[0]["Principal"], json!({"AWS": INSTANCE_PROFILE_ROLE}));
    }
    let assume = json_stdout(&run(&["policy", "assume", "--config", MULTI, "--format", "json"]));
    assert_eq!(statements(&assume)[0]["Resource"], json!(distinct_roles(&multi)));
    let pass = json_stdout(&run(&["policy", "pass-role", "--account", "111122223333", "--format", "json"]));
    let services: Vec<Value> =
        statements(&pass).iter().map(|s| s["Condition"]["StringEquals"]["iam:PassedToService"].clone()).collect();
    assert_eq!(
        services,
        ["elasticmapreduce.amazonaws.com", "ec2.amazonaws.com", "application-autoscaling.amazonaws.com"]
    );

    // By default standard output holds exactly the JSON, which tools such as the AWS CLI read.
    let default = run(&["policy", "assume", "--config", MULTI]);
    assert_eq!(serde_json::from_slice::<Value>(&default.stdout).expect("only JSON on standard output"), assume);
    let default = run(&["policy", "trust", "--config", MULTI, "--instance-profile-role", INSTANCE_PROFILE_ROLE]);
    assert!(serde_json::from_slice::<Value>(&default.stdout).expect("only JSON").is_object());

    // The text format is the same documents after `#` header lines.
    let text = run(&["policy", "assume", "--config", MULTI, "--format", "text"]);
    let text = String::from_utf8(text.stdout).expect("UTF-8");
    let (header, body) = text.split_once('\n').expect("a header line");
    assert!(header.starts_with("# ") && header.contains("10 mapped role(s)"), "{header}");
    assert_eq!(serde_json::from_str::<Value>(body).expect("the document after the header"), assume);
}

#[test]
fn bad_policy_input_exits_2_with_the_reason() {
    let bad: [(&[&str], &str); 6] = [
        (&["policy", "pass-role", "--account", "1111"], "the account `1111` is not 12 digits"),
        (&["policy", "pass-role", "--ec2-role", "EMR EC2"], "the EC2 role `EMR EC2` is not a valid IAM role name"),
        (
            &["policy", "trust", "--config", MULTI, "--instance-profile-role", "EMR_EC2_DefaultRole"],
            "invalid --instance-profile-role",
        ),
        (
            &["policy", "trust", "--config", MULTI, "--instance-profile-role", "arn:aws-cn:iam::111122223333:role/r"],
            "cannot cross partitions",
        ),
        (&["policy", "assume", "--config", "Cargo.toml"], "has 1 error(s)"),
        (&["policy", "assume", "--config", "does-not-exist.json"], "cannot read `does-not-exist.json`"),
    ];
    for (args, message) in bad {
        let out = run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    assert_eq!(
        run(&["policy", "trust", "--config", MULTI]).status.code(),
        Some(2),
        "--instance-profile-role is required"
    );
}

#[test]
fn check_compares_the_instance_profile_with_its_role() {
    let config = "tests/golden/configs/clean.json";
    let profile = "arn:aws:iam::123456789012:instance-profile/emr/EMR_EC2_Custom";
    let status_and_codes = |role: &str| {
        let out = run(&[
            "check",
            "--config",
            config,
            "--instance-profile",
            profile,
            "--instance-profile-role",
            role,
            "--format",
            "json",
        ]);
        let diagnostics: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let codes: Vec<(String, String, Option<u64>)> = diagnostics
            .as_array()
            .expect("an array")
            .iter()
            .map(|d| {
                (
                    d["code"].as_str().unwrap_or("").to_owned(),
                    d["severity"].as_str().unwrap_or("").to_owned(),
                    d["line"].as_u64(),
                )
            })
            .collect();
        (out.status.code(), codes)
    };
    // About no place in the document: `line` is null.
    let mismatch = ("instance-profile-mismatch".to_owned(), "error".to_owned(), None);
    assert_eq!(status_and_codes("arn:aws:iam::123456789012:role/EMR_EC2_Custom"), (Some(0), vec![]));
    assert_eq!(status_and_codes("arn:aws:iam::123456789012:role/EMR_EC2_Other"), (Some(1), vec![mismatch.clone()]));
    assert_eq!(
        status_and_codes("arn:aws:iam::999999999999:role/EMR_EC2_Other"),
        (Some(1), vec![mismatch.clone(), mismatch]),
        "a different name and a different account"
    );

    let out = run(&[
        "check",
        "--config",
        config,
        "--instance-profile",
        "arn:aws:iam::123456789012:role/EMR_EC2_Custom",
        "--instance-profile-role",
        "arn:aws:iam::123456789012:role/EMR_EC2_Custom",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid --instance-profile") && stderr.contains(":instance-profile/NAME"), "{stderr}");
    let out = run(&["check", "--config", config, "--instance-profile", profile]);
    assert_eq!(out.status.code(), Some(2), "--instance-profile needs --instance-profile-role");
}
