//! Configurations read from where they live, end to end: the built binary against moto's EMR, IAM and
//! STS (set up through boto3: `support::moto::Moto::emr_setup`), with `--security-configuration` and
//! `--cluster-id` on every command; and `--os-groups`, the user's groups from the operating system.

mod support;

use std::collections::HashMap;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::moto::{self, Moto};
use support::server::{Served, TempDir};

const ACCOUNT_ROLE: &str = "arn:aws:iam::123456789012:role/";
/// The role of the clusters' instance profile `EMR_EC2_Lake`.
const LAKE_ROLE: &str = "arn:aws:iam::123456789012:role/EMR_EC2_Lake";

/// A security configuration as EMR holds it: every section, role mappings among them.
fn document(mappings: Value) -> String {
    serde_json::to_string_pretty(&json!({
        "EncryptionConfiguration": {"EnableInTransitEncryption": false, "EnableAtRestEncryption": false},
        "AuthorizationConfiguration": {"EmrFsConfiguration": {"RoleMappings": mappings}}
    }))
    .unwrap()
}

fn lake_mappings() -> Value {
    json!([
        {"Role": format!("{ACCOUNT_ROLE}analysts"), "IdentifierType": "User", "Identifiers": ["alice"]},
        {"Role": format!("{ACCOUNT_ROLE}lake-reader"), "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]},
        {"Role": format!("{ACCOUNT_ROLE}admins"), "IdentifierType": "Group", "Identifiers": ["root", "nogroup"]}
    ])
}

/// moto with `lake-sc` (the mappings above), an encryption-only `crypto-sc`, the instance profiles
/// `EMR_EC2_Lake` (its role of the same name) and `ip-mismatched` (role `role-mismatched`), and the
/// clusters `lake`, `mismatched` (lake-sc with the mismatched profile) and `bare` (no security
/// configuration).
struct Lake {
    moto: Moto,
    clusters: HashMap<String, String>,
}

impl Lake {
    fn start() -> Lake {
        let moto = Moto::start();
        let clusters = moto.emr_setup(json!({
            "roles": ["EMR_EC2_Lake", "role-mismatched"],
            "instance_profiles": {"EMR_EC2_Lake": "EMR_EC2_Lake", "ip-mismatched": "role-mismatched"},
            "security_configurations": {
                "lake-sc": document(lake_mappings()),
                "crypto-sc": r#"{"EncryptionConfiguration": {"EnableInTransitEncryption": true}}"#,
            },
            "clusters": {
                "lake": {"security_configuration": "lake-sc", "instance_profile": "EMR_EC2_Lake"},
                "mismatched": {"security_configuration": "lake-sc", "instance_profile": "ip-mismatched"},
                "bare": {"instance_profile": "EMR_EC2_Lake"},
            },
        }));
        Lake { moto, clusters }
    }

    fn cluster(&self, name: &str) -> &str {
        &self.clusters[name]
    }

    /// Runs the binary with `args`, the AWS calls sent to moto with `--endpoint-url`.
    fn run(&self, args: &[&str]) -> Output {
        run(&[args, &["--endpoint-url", &self.moto.endpoint()]].concat(), None)
    }
}

/// Runs the binary under the tests' AWS environment, with `input` on standard input.
fn run(args: &[&str], input: Option<&str>) -> Output {
    run_command(moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap")).args(args), input)
}

fn run_command(command: &mut Command, input: Option<&str>) -> Output {
    let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or_default().as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert_eq!(output.status.code(), Some(0), "stderr: {}\nstdout: {}", text(&output.stderr), text(&output.stdout));
    text(&output.stdout)
}

/// `output` failed with status 2, printed nothing, and said each of `parts` on standard error.
fn unusable(output: &Output, parts: &[&str]) {
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}\nstdout: {}", text(&output.stdout));
    assert!(output.stdout.is_empty(), "printed as if it were a result: {}", text(&output.stdout));
    for part in parts {
        assert!(stderr.contains(part), "`{part}` missing from: {stderr}");
    }
}

fn json_out(output: &Output) -> Value {
    serde_json::from_str(&succeeded(output)).unwrap()
}

#[test]
fn check_reads_by_name_and_by_cluster_and_names_the_source() {
    let lake = Lake::start();
    let by_name = succeeded(&lake.run(&["check", "--security-configuration", "lake-sc"]));
    assert!(by_name.contains("security configuration lake-sc (from EMR): ok, 3 role mapping(s)"), "{by_name}");
    let id = lake.cluster("lake");
    let by_cluster = succeeded(&lake.run(&["check", "--cluster-id", id]));
    let label = format!("security configuration lake-sc of cluster {id} (from EMR): ok, 3 role mapping(s)");
    assert!(by_cluster.contains(&label), "{by_cluster}");
}

/// `check` takes several names, or several clusters, one kind per run: each is checked (a cluster's
/// instance profile against its role), one that cannot be read is an error that does not stop the
/// others, and the status is the worst.
#[test]
fn check_takes_several_names_or_clusters() {
    let lake = Lake::start();
    let names = ["check", "--security-configuration", "lake-sc", "--security-configuration", "nope-sc"];
    let output = lake.run(&[&names[..], &["--security-configuration", "crypto-sc"]].concat());
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}\nstdout: {stdout}");
    assert!(stdout.contains("security configuration lake-sc (from EMR): ok, 3 role mapping(s)"), "{stdout}");
    assert!(stderr.contains("`nope-sc`") && stderr.contains("`crypto-sc`"), "{stderr}");

    let (id, mismatched) = (lake.cluster("lake"), lake.cluster("mismatched"));
    let output = lake.run(&["check", "--cluster-id", id, "--cluster-id", mismatched, "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let diagnostics: Value = serde_json::from_slice(&output.stdout).unwrap();
    let errors: Vec<&Value> = diagnostics.as_array().unwrap().iter().filter(|d| d["severity"] == "error").collect();
    let files: Vec<&Value> = errors.iter().map(|e| &e["file"]).collect();
    let label = format!("security configuration lake-sc of cluster {mismatched} (from EMR)");
    assert_eq!(files, [&json!(label)], "{diagnostics}");
    assert_eq!(errors[0]["code"], "instance-profile-mismatch", "{diagnostics}");

    // One kind of source per run.
    let mixed = lake.run(&["check", "--security-configuration", "lake-sc", "--cluster-id", id]);
    assert_eq!(mixed.status.code(), Some(2), "{}", text(&mixed.stderr));
    assert!(text(&mixed.stderr).contains("cannot be used with"), "{}", text(&mixed.stderr));
}

#[test]
fn resolve_explain_and_test_by_name_and_by_cluster() {
    let lake = Lake::start();
    let id = lake.cluster("lake").to_owned();
    for source in [["--security-configuration", "lake-sc"], ["--cluster-id", &id]] {
        let alice =
            json_out(&lake.run(&[&["resolve"], &source[..], &["--user", "alice", "--format", "json"]].concat()));
        assert_eq!((&alice["mapping_index"], &alice["role"]), (&json!(0), &json!(format!("{ACCOUNT_ROLE}analysts"))));
        let explained = succeeded(&lake.run(&[&["explain"], &source[..], &["--path", "s3://lake/raw/x"]].concat()));
        assert!(explained.contains("mapping 1") && explained.contains("lake-reader"), "{explained}");
    }
    // The fallback role is the role of the cluster's instance profile, unless --fallback-role says otherwise.
    let fallback = ["resolve", "--user", "bob", "--path", "s3://other/x", "--format", "json"];
    let by_cluster = json_out(&lake.run(&[&fallback[..], &["--cluster-id", &id]].concat()));
    assert_eq!((&by_cluster["decision"], &by_cluster["role"]), (&json!("fallback"), &json!(LAKE_ROLE)));
    let by_name = json_out(&lake.run(&[&fallback[..], &["--security-configuration", "lake-sc"]].concat()));
    assert_eq!(by_name["role"], Value::Null, "a name alone has no cluster, so no fallback role");
    let explicit = format!("{ACCOUNT_ROLE}chosen");
    let chosen = json_out(&lake.run(&[&fallback[..], &["--cluster-id", &id, "--fallback-role", &explicit]].concat()));
    assert_eq!(chosen["role"], json!(explicit));

    // test: the cases file's fallback role must agree with the cluster's.
    let dir = TempDir::new("emr-cases");
    let cases = |fallback_role: &str| {
        let file = dir.path().join(format!("cases-{}.json", fallback_role.len()));
        let cases = json!({"fallback_role": fallback_role, "cases": [
            {"name": "bob falls back", "user": "bob", "path": "s3://other/x",
             "expect": {"decision": "fallback", "role": LAKE_ROLE}},
            {"name": "alice", "user": "alice", "expect": {"mapping_index": 0}}]});
        std::fs::write(&file, cases.to_string()).unwrap();
        file.to_string_lossy().into_owned()
    };
    let agreeing = cases(LAKE_ROLE);
    for source in [["--security-configuration", "lake-sc"], ["--cluster-id", &id]] {
        let passed = succeeded(&lake.run(&[&["test"], &source[..], &["--cases", &agreeing]].concat()));
        assert!(passed.contains("test result: 2 passed, 0 failed"), "{passed}");
    }
    let bench = ["bench", "--cluster-id", &id, "--seconds", "0", "--format", "json"];
    assert_eq!(json_out(&lake.run(&bench))["mappings"], 3);
    let other = format!("{ACCOUNT_ROLE}EMR_EC2_Elsewhere");
    let disagreeing = cases(&other);
    let refused = lake.run(&["test", "--cluster-id", &id, "--cases", &disagreeing]);
    unusable(&refused, &[LAKE_ROLE, &other, &format!("cluster `{id}`")]);
}

#[test]
fn credentials_and_policies_by_name_and_by_cluster() {
    let lake = Lake::start();
    // moto cannot dump its state once it holds EMR clusters: STS answers from another moto.
    let sts = Moto::start();
    let id = lake.cluster("lake").to_owned();
    for source in [["--security-configuration", "lake-sc"], ["--cluster-id", &id]] {
        let args = [&["credentials"], &source[..], &["--user", "alice", "--path", "s3://lake/x"]].concat();
        let credentials = json_out(&lake.run(&[&args[..], &["--sts-endpoint", &sts.endpoint()]].concat()));
        assert!(credentials["AccessKeyId"].as_str().unwrap().starts_with("ASIA"), "{credentials}");
    }
    let calls = sts.assumed_roles();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert!(calls.iter().all(|c| c["role_arn"] == json!(format!("{ACCOUNT_ROLE}analysts"))), "{calls:?}");

    // The trust policies name the cluster's instance-profile role as the principal.
    let trust = json_out(&lake.run(&["policy", "trust", "--cluster-id", &id, "--format", "json"]));
    let principal = &trust[format!("{ACCOUNT_ROLE}analysts")]["Statement"][0]["Principal"]["AWS"];
    assert_eq!(principal, &json!(LAKE_ROLE), "{trust}");
    let assume = json_out(&lake.run(&["policy", "assume", "--security-configuration", "lake-sc", "--format", "json"]));
    assert_eq!(assume["Statement"][0]["Resource"].as_array().map(Vec::len), Some(3), "{assume}");
}

#[test]
fn an_instance_profile_whose_role_has_another_name_fails_check() {
    let lake = Lake::start();
    let output = lake.run(&["check", "--cluster-id", lake.cluster("mismatched"), "--format", "json"]);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let diagnostics: Value = serde_json::from_slice(&output.stdout).unwrap();
    let errors: Vec<&Value> = diagnostics.as_array().unwrap().iter().filter(|d| d["severity"] == "error").collect();
    assert_eq!(errors.len(), 1, "{diagnostics}");
    assert_eq!(errors[0]["code"], "instance-profile-mismatch", "{diagnostics}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.contains("`ip-mismatched`") && message.contains("`role-mismatched`"), "{diagnostics}");
    // The same profile and role of the same name pass.
    succeeded(&lake.run(&["check", "--cluster-id", lake.cluster("lake")]));
}

#[test]
fn what_emr_cannot_give_is_exit_2_naming_it() {
    let lake = Lake::start();
    unusable(&lake.run(&["check", "--security-configuration", "nope-sc"]), &["`nope-sc`", "does not exist"]);
    for format in ["json", "sarif", "github"] {
        let output = lake.run(&["check", "--security-configuration", "nope-sc", "--format", format]);
        unusable(&output, &["`nope-sc`"]);
    }
    unusable(&lake.run(&["resolve", "--cluster-id", "j-NOPE0000000", "--user", "alice"]), &["`j-NOPE0000000`"]);
    let bare = lake.cluster("bare");
    unusable(
        &lake.run(&["explain", "--cluster-id", bare]),
        &[&format!("cluster `{bare}`"), "no security configuration"],
    );
    unusable(
        &lake.run(&["check", "--security-configuration", "crypto-sc"]),
        &["`crypto-sc`", "no EMRFS role mappings"],
    );
}

#[test]
fn diagnostics_point_inside_the_fetched_document() {
    let moto = Moto::start();
    let mappings =
        json!([{"Role": "arn:aws:iam::123456789012:rol/typo", "IdentifierType": "User", "Identifiers": ["a"]}]);
    moto.emr_setup(json!({"security_configurations": {"bad-sc": document(mappings)}}));
    let output = run(&["check", "--security-configuration", "bad-sc", "--endpoint-url", &moto.endpoint()], None);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let rendered = text(&output.stdout);
    // The pretty-printed document has the role on line 5 (EncryptionConfiguration first, keys sorted).
    let place = "--> security configuration bad-sc (from EMR):";
    assert!(rendered.contains(place) && rendered.contains("invalid-role-arn"), "{rendered}");
    let json_output = run(
        &["check", "--security-configuration", "bad-sc", "--endpoint-url", &moto.endpoint(), "--format", "json"],
        None,
    );
    let diagnostics: Value = serde_json::from_slice(&json_output.stdout).unwrap();
    assert_eq!(diagnostics[0]["pointer"], "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings/0/Role");
    let line = diagnostics[0]["line"].as_u64().unwrap();
    let fetched = document(
        json!([{"Role": "arn:aws:iam::123456789012:rol/typo", "IdentifierType": "User", "Identifiers": ["a"]}]),
    );
    let role_line = fetched.lines().position(|l| l.contains("rol/typo")).unwrap() as u64 + 1;
    assert_eq!(line, role_line, "{diagnostics}\n{fetched}");
    assert!(rendered.contains(&format!("{place}{line}:")), "{rendered}");
}

#[test]
fn a_stopped_emr_is_a_clear_error() {
    let mut lake = Lake::start();
    let endpoint = lake.moto.endpoint();
    lake.moto.stop();
    let started = Instant::now();
    let output = run(&["check", "--security-configuration", "lake-sc", "--endpoint-url", &endpoint], None);
    assert!(started.elapsed() < Duration::from_secs(20), "took {:?}", started.elapsed());
    unusable(&output, &[&format!("cannot reach EMR at `{endpoint}`"), "DescribeSecurityConfiguration of `lake-sc`"]);
}

#[test]
fn endpoints_come_from_the_sdk_environment_and_sts_endpoint_wins_for_sts() {
    let lake = Lake::start();
    let endpoint = lake.moto.endpoint();
    let nowhere = format!("http://127.0.0.1:{}", moto::free_port());
    let check = ["check", "--security-configuration", "lake-sc"];
    // AWS_ENDPOINT_URL for every service, AWS_ENDPOINT_URL_EMR before it, --endpoint-url before both.
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(check).env("AWS_ENDPOINT_URL", &endpoint);
    succeeded(&run_command(&mut command, None));
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(check).env("AWS_ENDPOINT_URL", &nowhere).env("AWS_ENDPOINT_URL_EMR", &endpoint);
    succeeded(&run_command(&mut command, None));
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(check).args(["--endpoint-url", &endpoint]).env("AWS_ENDPOINT_URL_EMR", &nowhere);
    succeeded(&run_command(&mut command, None));
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(check).env("AWS_ENDPOINT_URL_EMR", &nowhere);
    unusable(&run_command(&mut command, None), &[&format!("EMR at `{nowhere}`")]);

    // STS follows --endpoint-url, unless --sts-endpoint names another.
    let credentials =
        ["credentials", "--security-configuration", "lake-sc", "--user", "alice", "--endpoint-url", &endpoint];
    succeeded(&run(&credentials, None));
    let refused = run(&[&credentials[..], &["--sts-endpoint", &nowhere]].concat(), None);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains(&format!("STS at `{nowhere}`")), "{}", text(&refused.stderr));
}

/// `serve --cluster-id`: a security configuration changed in EMR becomes a new generation; EMR
/// stopped keeps the generation and shows in /readyz; SIGTERM stops a poll that waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_polls_emr_for_new_generations_and_keeps_serving_through_errors() {
    let mut lake = Lake::start();
    let endpoint = lake.moto.endpoint();
    let id = lake.cluster("lake").to_owned();
    let mut served = Served::start_from(
        &["--cluster-id", &id, "--endpoint-url", &endpoint],
        &endpoint,
        &["--poll-interval", "0.2", "--fallback-credentials", "trusted"],
    );
    let client = served.unix_client();
    let ready = served.wait_ready(|r| r["generation"] == 1).await;
    assert_eq!(ready["config"], json!(format!("security configuration lake-sc of cluster {id} (from EMR)")));
    let bob = r#"{"user": "bob", "groups": ["staff"], "path": "s3://other/x"}"#;
    let fallback = client.post("/v1/resolve", bob).await.json();
    assert_eq!((&fallback["decision"], &fallback["role"]), (&json!("fallback"), &json!(LAKE_ROLE)));

    // The same document read again is no new generation.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(client.get("/readyz").await.json()["generation"], 1);

    // A changed security configuration becomes generation 2.
    let mut changed = lake_mappings();
    changed.as_array_mut().unwrap().insert(
        0,
        json!({"Role": format!("{ACCOUNT_ROLE}staff"), "IdentifierType": "Group", "Identifiers": ["staff"]}),
    );
    lake.moto.emr_setup(json!({"security_configurations": {"lake-sc": document(changed)}}));
    served.wait_ready(|r| r["generation"] == 2).await;
    let staff = client.post("/v1/resolve", bob).await.json();
    assert_eq!((&staff["generation"], &staff["role"]), (&json!(2), &json!(format!("{ACCOUNT_ROLE}staff"))));

    // EMR gone: the generation stays, /readyz says why, answers keep coming.
    lake.moto.stop();
    let failed = served.wait_ready(|r| !r["last_reload_error"].is_null()).await;
    assert_eq!((&failed["generation"], &failed["last_reload_error"]["code"]), (&json!(2), &json!("aws-unreachable")));
    let message = failed["last_reload_error"]["message"].as_str().unwrap();
    assert!(message.contains(&format!("cluster `{id}`")), "{failed}");
    let started = Instant::now();
    let still = client.post("/v1/resolve", bob).await.json();
    assert!(started.elapsed() < Duration::from_millis(500), "a request waited on the poll: {:?}", started.elapsed());
    assert_eq!(still["generation"], 2);

    // A poll that hangs (something accepts on EMR's port and never answers) is stopped by SIGTERM.
    let port = endpoint.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let _black_hole = TcpListener::bind(("127.0.0.1", port)).unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    served.signal("TERM");
    assert_eq!(served.wait_exit(Duration::from_secs(10)), Some(0));
    assert!(started.elapsed() < Duration::from_secs(3), "SIGTERM waited for the poll: {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_by_name_and_never_without_its_configuration_from_emr() {
    let lake = Lake::start();
    let endpoint = lake.moto.endpoint();
    let served =
        Served::start_from(&["--security-configuration", "lake-sc", "--endpoint-url", &endpoint], &endpoint, &[]);
    let ready = served.wait_ready(|r| r["generation"] == 1).await;
    assert_eq!(
        (&ready["config"], &ready["mappings"]),
        (&json!("security configuration lake-sc (from EMR)"), &json!(3))
    );
    let alice = served.unix_client().post("/v1/resolve", r#"{"user": "alice"}"#).await.json();
    assert_eq!(alice["role"], json!(format!("{ACCOUNT_ROLE}analysts")));

    let output = run(
        &["serve", "--security-configuration", "nope-sc", "--endpoint-url", &endpoint, "--socket", "/tmp/x.sock"],
        None,
    );
    unusable(&output, &["`nope-sc`"]);
}

/// The groups `id` gives `user`, primary group first.
fn id_groups(user: &str) -> Vec<String> {
    let primary = Command::new("id").args(["-gn", user]).output().unwrap();
    let all = Command::new("id").args(["-Gn", user]).output().unwrap();
    let primary = text(&primary.stdout).trim().to_owned();
    let mut groups = vec![primary.clone()];
    groups.extend(text(&all.stdout).split_whitespace().filter(|g| *g != primary).map(str::to_owned));
    groups
}

#[test]
fn os_groups_come_from_the_operating_system() {
    moto::aws_env();
    let dir = TempDir::new("os-groups");
    let config = dir.path().join("config.json");
    std::fs::write(&config, document(lake_mappings())).unwrap();
    let config = config.to_string_lossy().into_owned();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();

    // root, by name: its group `root` decides.
    let root =
        json_out(&run(&["resolve", "--config", &config, "--user", "root", "--os-groups", "--format", "json"], None));
    assert_eq!((&root["identifier_type"], &root["identifier"]), (&json!("Group"), &json!("root")), "{root}");
    assert_eq!(id_groups("root").first().map(String::as_str), Some("root"));

    // nobody, as the process's own user: its groups from the system decide (`nogroup` on Debian).
    let nobody_groups = id_groups("nobody");
    use std::os::unix::process::CommandExt;
    let mut command = moto::aws_command(env!("CARGO_BIN_EXE_emrfs-rolemap"));
    command.args(["explain", "--config", &config, "--os-groups", "--format", "json"]).uid(65_534).gid(65_534);
    let explained = json_out(&run_command(&mut command, None));
    let decided = &explained["resolution"];
    if nobody_groups.iter().any(|g| g == "nogroup") {
        assert_eq!(decided["identifier"], json!("nogroup"), "{explained}");
    } else {
        assert_eq!(decided["decision"], json!("fallback"), "groups {nobody_groups:?}: {explained}");
    }
    // Without --os-groups, nobody has no groups: the fallback.
    let plain = json_out(&run(&["resolve", "--config", &config, "--user", "nobody", "--format", "json"], None));
    assert_eq!(plain["decision"], json!("fallback"));

    // An unknown user is unusable input.
    unusable(
        &run(&["resolve", "--config", &config, "--user", "no-such-user-x", "--os-groups"], None),
        &["--os-groups", "no user `no-such-user-x`"],
    );

    // test cases with "groups_from": "os".
    let cases = dir.path().join("cases.json");
    let file = json!({"cases": [
        {"name": "root by its groups", "user": "root", "groups_from": "os", "expect": {"identifier": "root"}},
        {"name": "root without them", "user": "root", "expect": {"decision": "fallback"}}]});
    std::fs::write(&cases, file.to_string()).unwrap();
    let passed = succeeded(&run(&["test", "--config", &config, "--cases", &cases.to_string_lossy()], None));
    assert!(passed.contains("2 passed, 0 failed"), "{passed}");
}

#[test]
fn credentials_with_os_groups_assume_the_group_role() {
    let moto = Moto::start();
    let dir = TempDir::new("os-groups-credentials");
    let config = dir.path().join("config.json");
    std::fs::write(&config, document(lake_mappings())).unwrap();
    let args = ["credentials", "--config", config.to_str().unwrap(), "--user", "root", "--os-groups"];
    let output = run(&[&args[..], &["--sts-endpoint", &moto.endpoint()]].concat(), None);
    let credentials: Value = serde_json::from_str(&succeeded(&output)).unwrap();
    assert!(credentials["AccessKeyId"].as_str().unwrap().starts_with("ASIA"));
    let calls = moto.assumed_roles();
    assert_eq!(calls[0]["role_arn"], json!(format!("{ACCOUNT_ROLE}admins")), "{calls:?}");
}
