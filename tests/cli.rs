//! The built `emrfs-rolemap` binary, run as a user runs it: every command, its outputs and exit statuses.

mod support;

use std::process::Output;

use serde_json::{Value, json};
use support::cli::{run, run_with_input};

const DOCS: &str = "examples/configs/aws-docs-example.json";
const DESCRIBE: &str = "examples/configs/describe-security-configuration-output.json";
const MULTI: &str = "examples/configs/multi-team.json";
const MULTI_NEXT: &str = "examples/configs/multi-team-next.json";
const CASES: &str = "examples/configs/aws-docs-example.cases.json";
const FALLBACK: &str = "arn:aws:iam::123456789101:role/EMR_EC2_DefaultRole";

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("stdout is UTF-8")
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).expect("stderr is UTF-8")
}

fn status(output: &Output) -> i32 {
    output.status.code().expect("the binary exits normally")
}

fn json_out(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", stdout(output)))
}

fn temp_file(name: &str, contents: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("emrfs-rolemap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("temp file");
    path
}

#[test]
fn check_accepts_each_bundled_example() {
    for config in [DOCS, DESCRIBE, MULTI, MULTI_NEXT] {
        let out = run(&["check", "--config", config]);
        assert_eq!(status(&out), 0, "{config}: {}", stdout(&out));
        assert!(stdout(&out).contains(": ok, "), "{}", stdout(&out));
        let out = run(&["check", "--config", config, "--format", "json"]);
        let diagnostics = json_out(&out);
        let severities: Vec<&Value> = diagnostics.as_array().into_iter().flatten().map(|d| &d["severity"]).collect();
        assert!(severities.iter().all(|s| *s == "warning" || *s == "note"), "{config}: {diagnostics}");
    }
}

#[test]
fn check_reports_errors_with_carets_and_exits_1() {
    let bad = temp_file(
        "bad.json",
        "{\"RoleMappings\": [\n  {\"Role\": \"arn:aws:iam::123456789012:role/r\", \"IdentifierType\": \"Users\", \"Identifiers\": [\"a\"]}\n]}\n",
    );
    let bad = bad.to_str().expect("utf-8 path");
    let out = run(&["check", "--config", bad]);
    assert_eq!(status(&out), 1);
    let text = stdout(&out);
    assert!(text.contains("error[unknown-identifier-type]: unknown identifier type `Users`"), "{text}");
    assert!(text.contains(&format!("--> {bad}:2:66\n")), "{text}");
    let caret_line = text.lines().find(|l| l.contains('^')).expect("a caret line");
    let source_line = text.lines().find(|l| l.starts_with("2 | ")).expect("the source line");
    assert_eq!(caret_line.find('^'), source_line.find("\"Users\""), "the underline starts at the value:\n{text}");
    assert!(caret_line.ends_with("| ^^^^^^^ /RoleMappings/0/IdentifierType".trim_start_matches('|')), "{text}");
    assert!(text.contains("did you mean `User`?"), "{text}");

    let out = run(&["check", "--config", bad, "--format", "json"]);
    assert_eq!(status(&out), 1);
    let diagnostics = json_out(&out);
    assert_eq!(diagnostics[0]["code"], "unknown-identifier-type");
    assert_eq!(diagnostics[0]["severity"], "error");
    assert_eq!(diagnostics[0]["pointer"], "/RoleMappings/0/IdentifierType");
    assert_eq!((diagnostics[0]["line"].as_u64(), diagnostics[0]["column"].as_u64()), (Some(2), Some(66)));
    for key in ["message", "help"] {
        assert!(diagnostics[0][key].as_str().is_some_and(|s| !s.is_empty()), "{key}");
    }
}

#[test]
fn check_exits_1_on_malformed_json_from_stdin() {
    let out = run_with_input(&["check", "--config", "-", "--format", "json"], "{\"RoleMappings\": [,]}");
    assert_eq!(status(&out), 1);
    let diagnostics = json_out(&out);
    assert_eq!(diagnostics[0]["code"], "json-syntax");
    assert_eq!((diagnostics[0]["line"].as_u64(), diagnostics[0]["column"].as_u64()), (Some(1), Some(19)));
}

#[test]
fn check_validates_globs_only_when_enabled() {
    let config = r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "Group", "Identifiers": ["team-[a"]}]}"#;
    assert_eq!(status(&run_with_input(&["check", "--config", "-"], config)), 0);
    let out = run_with_input(&["check", "--config", "-", "--globs", "--format", "json"], config);
    assert_eq!(status(&out), 1);
    assert_eq!(json_out(&out)[0]["code"], "invalid-glob");
}

#[test]
fn check_reports_positions_inside_the_describe_output_string() {
    let describe = json!({"Name": "x", "SecurityConfiguration": "{\"AuthorizationConfiguration\": {\"EmrFsConfiguration\": {\"RoleMappings\": []}}}"});
    let out = run_with_input(&["check", "--config", "-", "--format", "json"], &describe.to_string());
    assert_eq!(status(&out), 1);
    let d = &json_out(&out)[0];
    assert_eq!(d["code"], "empty-role-mappings");
    assert_eq!(d["embedded_in"], "/SecurityConfiguration");
    assert_eq!(d["pointer"], "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings");
    assert_eq!((d["line"].as_u64(), d["column"].as_u64()), (Some(1), Some(72)));
}

#[test]
fn resolve_prints_text_and_json() {
    let out = run(&["resolve", "--config", DOCS, "--user", "user2", "--path", "s3a://MyOtherBucket/x"]);
    assert_eq!(status(&out), 0);
    assert_eq!(
        stdout(&out).trim(),
        "mapping 1 (Prefix `s3://MyOtherBucket/`): arn:aws:iam::123456789101:role/allow_EMRFS_access_to_MyBuckets"
    );
    let out = run(&[
        "resolve",
        "--config",
        DESCRIBE,
        "--user",
        "nobody",
        "--group",
        "staff",
        "--group",
        "AdminGroup",
        "--format",
        "json",
    ]);
    assert_eq!(status(&out), 0);
    assert_eq!(
        json_out(&out),
        json!({"decision": "mapping", "role": "arn:aws:iam::123456789101:role/allow_EMRFS_access_for_AdminGroup",
               "mapping_index": 2, "identifier_type": "Group", "identifier": "AdminGroup"})
    );
}

#[test]
fn resolve_falls_back_with_or_without_a_fallback_role() {
    let out = run(&["resolve", "--config", DOCS, "--user", "x", "--format", "json"]);
    assert_eq!(
        json_out(&out),
        json!({"decision": "fallback", "role": null, "mapping_index": null, "identifier_type": null, "identifier": null})
    );
    let out = run(&["resolve", "--config", DOCS, "--fallback-role", FALLBACK, "--format", "json"]);
    assert_eq!(json_out(&out)["role"], FALLBACK);
    let out = run(&["resolve", "--config", DOCS, "--fallback-role", FALLBACK]);
    assert_eq!(stdout(&out).trim(), format!("fallback: {FALLBACK}"));
}

#[test]
fn resolve_honours_segment_mode_and_globs() {
    let config = r#"{"RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/abc", "IdentifierType": "Prefix", "Identifiers": ["s3://bar/abc"]},
        {"Role": "arn:aws:iam::123456789012:role/team", "IdentifierType": "Group", "Identifiers": ["team-*"]}]}"#;
    let index = |args: &[&str]| {
        let mut all = vec!["resolve", "--config", "-", "--format", "json"];
        all.extend_from_slice(args);
        json_out(&run_with_input(&all, config))["mapping_index"].clone()
    };
    assert_eq!(index(&["--path", "s3://bar/abcdef"]), json!(0));
    assert_eq!(index(&["--path", "s3://bar/abcdef", "--prefix-match", "segment"]), json!(null));
    assert_eq!(index(&["--path", "s3://bar/abc/def", "--prefix-match", "segment"]), json!(0));
    assert_eq!(index(&["--group", "team-a"]), json!(null), "globs are off by default");
    assert_eq!(index(&["--group", "team-*"]), json!(1), "without --globs `*` is literal");
    assert_eq!(index(&["--group", "team-a", "--globs"]), json!(1));
}

#[test]
fn resolve_batch_writes_one_line_per_request_and_flags_bad_lines() {
    let input = "{\"user\": \"user1\"}\n\n{\"path\": \"hdfs://nn/x\"}\n{\"usr\": \"typo\"}\nnot json\n{\"groups\": [\"AdminGroup\"], \"path\": \"s3://MyBucket\"}\n{}\n";
    let out = run_with_input(&["resolve", "--config", DOCS, "--requests", "-"], input);
    assert_eq!(status(&out), 1, "bad lines make the batch exit 1");
    let lines: Vec<Value> =
        stdout(&out).lines().map(|l| serde_json::from_str(l).expect("every output line is JSON")).collect();
    assert_eq!(lines.len(), 6, "one line per non-blank input line");
    assert_eq!(lines[0]["mapping_index"], 0);
    assert_eq!(lines[1]["error"]["line"], 3);
    assert!(lines[1]["error"]["message"].as_str().unwrap_or_default().contains("unsupported scheme"));
    assert_eq!(lines[2]["error"]["line"], 4);
    assert!(lines[2]["error"]["message"].as_str().unwrap_or_default().contains("unknown field `usr`"));
    assert_eq!(lines[3]["error"]["line"], 5);
    assert_eq!(lines[4]["identifier"], "s3://MyBucket/", "the prefix mapping wins over the group mapping");
    assert_eq!(lines[5]["decision"], "fallback");

    let good = run_with_input(&["resolve", "--config", DOCS, "--requests", "-"], "{\"user\": \"user1\"}\n");
    assert_eq!(status(&good), 0);
}

#[test]
fn explain_shows_every_mapping_and_shadowing() {
    let args =
        ["explain", "--config", MULTI, "--user", "etl", "--group", "finance", "--path", "s3://acme-scratch/tmp/"];
    let out = run(&args);
    assert_eq!(status(&out), 0);
    let text = stdout(&out);
    assert_eq!(text.lines().count(), 11, "{text}");
    assert!(text.lines().next().is_some_and(|l| l.starts_with("=> decisive  #0") && l.contains("matched `etl`")));
    assert!(text.contains("shadowed  #3"), "{text}");
    assert!(text.contains("shadowed  #7"), "{text}");
    assert!(text.contains("`s3://acme-lake/pii/` is in bucket `acme-lake`, not `acme-scratch`"), "{text}");

    let mut json_args = args.to_vec();
    json_args.extend(["--format", "json"]);
    let trace = json_out(&run(&json_args));
    assert_eq!(trace["resolution"]["mapping_index"], 0);
    let statuses: Vec<&str> =
        trace["mappings"].as_array().expect("mappings").iter().map(|m| m["status"].as_str().unwrap_or("?")).collect();
    assert_eq!(statuses.iter().filter(|s| **s == "decisive").count(), 1);
    assert_eq!(statuses[3], "shadowed");
    assert_eq!(trace["mappings"][1]["pointer"], "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings/1");
}

#[test]
fn test_passes_the_bundled_cases() {
    let out = run(&["test", "--config", DOCS, "--cases", CASES]);
    assert_eq!(status(&out), 0, "{}", stdout(&out));
    assert!(stdout(&out).ends_with("test result: 4 passed, 0 failed\n"), "{}", stdout(&out));
}

#[test]
fn test_reports_failures_with_the_trace_in_every_format() {
    let cases = json!({"cases": [
        {"name": "right", "user": "user1", "expect": {"mapping_index": 0}},
        {"name": "wrong <&>", "groups": ["AdminGroup"], "expect": {"decision": "fallback", "identifier": null}},
        {"name": "bad path", "path": "http://x", "expect": {}}
    ]});
    let file = temp_file("cases.json", &cases.to_string());
    let file = file.to_str().expect("utf-8 path");

    let out = run(&["test", "--config", DOCS, "--cases", file]);
    assert_eq!(status(&out), 1);
    let text = stdout(&out);
    assert!(text.contains("FAIL  wrong <&>"), "{text}");
    assert!(text.contains("decision: expected `fallback`, got `mapping`"), "{text}");
    assert!(text.contains("identifier: expected null, got `AdminGroup`"), "{text}");
    assert!(text.contains("| => decisive  #2"), "the explain trace follows a failure:\n{text}");
    assert!(text.contains("invalid path `http://x`"), "{text}");
    assert!(text.ends_with("test result: 1 passed, 2 failed\n"), "{text}");

    let report = json_out(&run(&["test", "--config", DOCS, "--cases", file, "--format", "json"]));
    assert_eq!((report["passed"].as_u64(), report["failed"].as_u64()), (Some(1), Some(2)));
    assert_eq!(report["cases"][1]["explanation"]["resolution"]["mapping_index"], 2);

    let out = run(&["test", "--config", DOCS, "--cases", file, "--format", "junit"]);
    assert_eq!(status(&out), 1);
    let xml = stdout(&out);
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"), "{xml}");
    assert!(xml.contains(r#"<testsuite name="cases" tests="3" failures="1" errors="1" skipped="0" time=""#), "{xml}");
    assert!(xml.contains(r#"<testcase name="wrong &lt;&amp;&gt;" classname="cases" time=""#), "{xml}");
    assert_eq!(xml.matches("<failure ").count(), 1, "an unmet expectation is a failure:\n{xml}");
    assert_eq!(
        xml.matches(r#"<error message="invalid path `http://x`"#).count(),
        1,
        "a case that cannot run is an error:\n{xml}"
    );
}

#[test]
fn test_takes_the_fallback_role_from_the_file_or_the_flag_but_not_two() {
    let cases = json!({"fallback_role": FALLBACK, "cases": [{"expect": {"role": FALLBACK}}]});
    let file = temp_file("fallback-cases.json", &cases.to_string());
    let file = file.to_str().expect("utf-8 path");
    assert_eq!(status(&run(&["test", "--config", DOCS, "--cases", file])), 0);
    let other = "arn:aws:iam::123456789101:role/Other";
    let out = run(&["test", "--config", DOCS, "--cases", file, "--fallback-role", other]);
    assert_eq!(status(&out), 2);
    assert!(stderr(&out).contains("differs from the cases file"), "{}", stderr(&out));
}

#[test]
fn diff_exits_0_without_changes_and_1_with_them_reading_either_side_from_stdin() {
    let same = run(&["diff", "--old", DOCS, "--new", DESCRIBE, "--format", "json"]);
    assert_eq!(status(&same), 0, "{}", stderr(&same));
    assert_eq!(json_out(&same), json!({"changes": [], "complete": true, "truncated": false}));
    let files = run(&["diff", "--old", MULTI, "--new", MULTI_NEXT]);
    assert_eq!(status(&files), 1, "{}", stderr(&files));
    let multi = std::fs::read_to_string(MULTI).expect("example");
    let next = std::fs::read_to_string(MULTI_NEXT).expect("example");
    for (args, input) in [(["--old", "-", "--new", MULTI_NEXT], &multi), (["--old", MULTI, "--new", "-"], &next)] {
        let piped = run_with_input(&[&["diff"][..], &args].concat(), input);
        assert_eq!(status(&piped), 1, "{args:?}: {}", stderr(&piped));
        assert_eq!(stdout(&piped), stdout(&files), "{args:?}: standard input reads as the file");
    }
    let none = run(&["diff", "--old", MULTI, "--new", MULTI_NEXT, "--max-changes", "0", "--format", "json"]);
    assert_eq!(status(&none), 1, "changes exist, even when none is listed");
    assert_eq!(json_out(&none), json!({"changes": [], "complete": true, "truncated": true}));
}

/// Each change's `old` and `new` are what `resolve --format json` prints for its witness, on each side.
#[test]
fn diff_json_changes_are_resolve_answers_for_their_witnesses() {
    let fallback = "arn:aws:iam::111122223333:role/EMR_EC2_DefaultRole";
    let out = run(&["diff", "--old", MULTI, "--new", MULTI_NEXT, "--fallback-role", fallback, "--format", "json"]);
    let diff = json_out(&out);
    let object_keys = |v: &Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(object_keys(&diff), ["changes", "complete", "truncated"]);
    let changes = diff["changes"].as_array().expect("an array");
    assert!(changes.len() > 10, "{diff}");
    for change in changes {
        assert_eq!(object_keys(change), ["old", "new", "witness", "summary"]);
        let witness = &change["witness"];
        assert_eq!(object_keys(witness), ["user", "groups", "path"]);
        let mut request: Vec<String> = Vec::new();
        if let Some(user) = witness["user"].as_str() {
            request.extend(["--user".to_owned(), user.to_owned()]);
        }
        for group in witness["groups"].as_array().expect("groups") {
            request.extend(["--group".to_owned(), group.as_str().expect("a group").to_owned()]);
        }
        if let Some(path) = witness["path"].as_str() {
            request.extend(["--path".to_owned(), path.to_owned()]);
        }
        for (side, config) in [("old", MULTI), ("new", MULTI_NEXT)] {
            let mut args = vec!["resolve", "--config", config, "--fallback-role", fallback, "--format", "json"];
            args.extend(request.iter().map(String::as_str));
            assert_eq!(json_out(&run(&args)), change[side], "{side} of {change}");
        }
        assert!(change["summary"].as_str().is_some_and(|s| s.starts_with("requests by ")), "{change}");
    }
}

#[test]
fn unusable_input_exits_2_with_a_message() {
    let cases: [(&[&str], &str); 9] = [
        (&["resolve", "--config", "does-not-exist.json"], "cannot read `does-not-exist.json`"),
        (&["resolve", "--config", DOCS, "--path", "bucket/key"], "invalid --path `bucket/key`"),
        (&["resolve", "--config", DOCS, "--fallback-role", "EMR_EC2_DefaultRole"], "invalid --fallback-role"),
        (&["test", "--config", DOCS, "--cases", DOCS], "invalid cases file"),
        (&["resolve", "--config", "-", "--requests", "-"], "cannot both read standard input"),
        (&["explain", "--config", "Cargo.toml"], "has 1 error(s)"),
        (&["diff", "--old", "-", "--new", "-"], "--old and --new cannot both read standard input"),
        (&["diff", "--old", DOCS, "--new", "Cargo.toml"], "the configuration `Cargo.toml` has 1 error(s)"),
        (&["diff", "--old", "missing.json", "--new", DOCS], "cannot read `missing.json`"),
    ];
    for (args, message) in cases {
        let out = run(args);
        assert_eq!(status(&out), 2, "{args:?}");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
}

#[test]
fn usage_errors_exit_2() {
    for args in [&["resolve"][..], &["frobnicate"], &["resolve", "--config", DOCS, "--format", "yaml"]] {
        assert_eq!(status(&run(args)), 2, "{args:?}");
    }
    let out = run(&["resolve", "--config", DOCS, "--requests", "-", "--user", "u"]);
    assert_eq!(status(&out), 2, "--requests excludes single-request flags");
}
