//! The `generate` and `bench` commands, run as a user runs them: reproducible corpora that check and
//! resolve, and a benchmark report of the promised shape with positive, consistent figures (never a
//! timing threshold).

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::cli::run;

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("emrfs-rolemap-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn generate(out: &Path, mappings: &str, requests: &str, seed: &str) -> (String, String) {
    let o = out.to_str().expect("UTF-8 temp path");
    let output = run(&["generate", "--mappings", mappings, "--requests", requests, "--seed", seed, "--out", o]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let read = |name: &str| std::fs::read_to_string(out.join(name)).expect("generated file");
    (read("config.json"), read("requests.jsonl"))
}

#[test]
fn generate_is_reproducible_from_the_seed() {
    let (a, b, c) = (dir("a"), dir("b"), dir("c"));
    let first = generate(&a, "120", "30", "5");
    assert_eq!(first, generate(&b, "120", "30", "5"));
    let other = generate(&c, "120", "30", "6");
    assert_ne!(first.0, other.0);
    assert_ne!(first.1, other.1);
    assert_eq!(first.1.lines().count(), 30);
}

#[test]
fn generated_configs_check_and_their_requests_resolve_to_every_kind() {
    let out = dir("resolve");
    generate(&out, "300", "40", "11");
    let config = out.join("config.json");
    let config = config.to_str().expect("UTF-8 temp path");
    let check = run(&["check", "--config", config]);
    assert_eq!(check.status.code(), Some(0), "{}", text(&check.stdout));
    assert!(text(&check.stdout).contains("ok, 300 role mapping(s)"), "{}", text(&check.stdout));

    let requests = out.join("requests.jsonl");
    let resolved = run(&["resolve", "--config", config, "--requests", requests.to_str().expect("UTF-8")]);
    assert_eq!(resolved.status.code(), Some(0), "{}", text(&resolved.stdout));
    let lines: Vec<Value> =
        text(&resolved.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 40);
    for kind in ["Prefix", "User", "Group"] {
        assert_eq!(lines.iter().filter(|l| l["identifier_type"] == kind).count(), 10, "{kind}");
    }
    assert_eq!(lines.iter().filter(|l| l["decision"] == "fallback").count(), 10);
}

#[test]
fn generated_edits_are_reproducible_and_diff_finds_their_changes() {
    let (a, b) = (dir("edits-a"), dir("edits-b"));
    let edited = |out: &Path| {
        let o = out.to_str().expect("UTF-8 temp path");
        let output = run(&["generate", "--mappings", "200", "--requests", "1", "--edits", "10", "--out", o]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(text(&output.stdout).contains("10 edit(s)"), "{}", text(&output.stdout));
        std::fs::read_to_string(out.join("config-edited.json")).expect("the edited configuration")
    };
    assert_eq!(edited(&a), edited(&b));
    let plain = dir("edits-none");
    generate(&plain, "50", "1", "1");
    assert!(!plain.join("config-edited.json").exists(), "no edits, no edited configuration");
    let (old, new) = (a.join("config.json"), a.join("config-edited.json"));
    let args =
        ["diff", "--old", old.to_str().expect("UTF-8"), "--new", new.to_str().expect("UTF-8"), "--format", "json"];
    let diffed = run(&args);
    assert_eq!(diffed.status.code(), Some(1), "ten edits change requests: {}", text(&diffed.stderr));
    let diff: Value = serde_json::from_slice(&diffed.stdout).expect("JSON");
    assert!(diff["changes"].as_array().is_some_and(|c| !c.is_empty()), "{diff}");
    assert_eq!(diff["complete"], true);
}

#[test]
fn bench_json_has_the_promised_fields_with_consistent_numbers() {
    let out = dir("json");
    generate(&out, "200", "20", "3");
    let config = out.join("config.json");
    let requests = out.join("requests.jsonl");
    let (config, requests) = (config.to_str().expect("UTF-8"), requests.to_str().expect("UTF-8"));
    for extra in [&["--requests", requests][..], &[]] {
        let mut args = vec!["bench", "--config", config, "--seconds", "0.2", "--format", "json"];
        args.extend_from_slice(extra);
        let output = run(&args);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        assert!(output.stderr.is_empty(), "no progress bar for a short run: {}", text(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        let number = |field: &str| report[field].as_f64().unwrap_or_else(|| panic!("`{field}` in {report}"));
        for field in [
            "compiled_ns_median",
            "reference_ns_median",
            "baseline_ns_median",
            "speedup",
            "baseline_ratio",
            "compile_ms",
            "memory_bytes",
            "identifiers",
        ] {
            assert!(number(field) > 0.0, "`{field}` in {report}");
        }
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
        assert!(close(number("speedup"), number("reference_ns_median") / number("compiled_ns_median")));
        assert!(close(number("baseline_ratio"), number("compiled_ns_median") / number("baseline_ns_median")));
        assert!(number("compiled_ns_p99") >= number("compiled_ns_median"));
        assert_eq!(report["memory_counted"], true);
        assert_eq!(report["requests"], if extra.is_empty() { 1000 } else { 20 });
    }
}

#[test]
fn bench_text_names_each_figure_and_shows_progress_on_longer_runs() {
    let out = dir("text");
    generate(&out, "50", "8", "1");
    let config = out.join("config.json");
    let output = run(&["bench", "--config", config.to_str().expect("UTF-8"), "--seconds", "1.2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for needle in ["compiled (prepared)", "reference scan", "limit (one hash lookup)", "speedup", "resolver memory"] {
        assert!(stdout.contains(needle), "`{needle}` in {stdout}");
    }
    // Progress goes to standard error only when it is a terminal (`script` gives the command one);
    // tests/ci_outputs.rs checks that none goes into a pipe.
    let command = format!("{} bench --config {} --seconds 1.2", env!("CARGO_BIN_EXE_emrfs-rolemap"), config.display());
    let on_terminal = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .output()
        .expect("`script` (util-linux) runs; install util-linux");
    let shown = text(&on_terminal.stdout);
    assert!(shown.contains('\r') && shown.contains("100 %"), "{shown:?}");
}

#[test]
fn bench_rejects_unusable_input_with_status_2() {
    let out = dir("bad");
    std::fs::create_dir_all(&out).expect("temp dir");
    let config = out.join("config.json");
    std::fs::write(&config, r#"{"RoleMappings": [{"Role": "nope", "IdentifierType": "User", "Identifiers": ["a"]}]}"#)
        .expect("write");
    let output = run(&["bench", "--config", config.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("error(s)"), "{}", text(&output.stderr));

    let good = "examples/configs/multi-team.json";
    let requests = out.join("requests.jsonl");
    std::fs::write(&requests, "{\"user\": \"a\"}\nnot json\n").expect("write");
    let output = run(&["bench", "--config", good, "--requests", requests.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("line 2"), "{}", text(&output.stderr));

    let output = run(&["generate", "--mappings", "0", "--out", out.to_str().expect("UTF-8")]);
    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("invalid --mappings `0`"), "{}", text(&output.stderr));

    let output = run(&["bench", "--config", good, "--seconds=-1"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(text(&output.stderr).contains("invalid --seconds `-1`"), "{}", text(&output.stderr));
}

/// The JSON fields of `bench --server` that are figures, each positive in a run without errors.
#[cfg(all(feature = "server", unix))]
const SERVER_FIGURES: [&str; 13] = [
    "server_p50_ns",
    "server_p99_ns",
    "baseline_p50_ns",
    "baseline_p99_ns",
    "latency_ratio",
    "server_rps",
    "baseline_rps",
    "throughput_ratio",
    "cpu_ratio",
    "credentials_hit_p50_ns",
    "credentials_hit_p99_ns",
    "credentials_ratio",
    "answer_bytes",
];

#[cfg(all(feature = "server", unix))]
#[test]
fn bench_server_measures_both_transports_and_checks_every_answer() {
    let out = dir("server");
    generate(&out, "200", "40", "3");
    let config = out.join("config.json");
    let requests = out.join("requests.jsonl");
    let (config, requests) = (config.to_str().expect("UTF-8"), requests.to_str().expect("UTF-8"));
    for transport in ["unix", "tcp"] {
        let output = run(&[
            "bench",
            "--server",
            "--config",
            config,
            "--requests",
            requests,
            "--seconds",
            "1",
            "--clients",
            "4",
            "--transport",
            transport,
            "--format",
            "json",
        ]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
        assert_eq!(report["errors"], 0, "{report}");
        assert_eq!(report["error_examples"], serde_json::json!([]), "{report}");
        assert_eq!(report["transport"], transport);
        assert_eq!((report["requests"].as_u64(), report["clients"].as_u64()), (Some(40), Some(4)), "{report}");
        // The generated corpus cycles prefix, user and group hits and fallbacks: 30 of 40 are mapped.
        assert_eq!(report["credential_requests"], 30, "{report}");
        let number = |field: &str| report[field].as_f64().unwrap_or_else(|| panic!("`{field}` in {report}"));
        for field in SERVER_FIGURES {
            assert!(number(field) > 0.0 && number(field).is_finite(), "`{field}` in {report}");
        }
        assert!(number("server_p99_ns") >= number("server_p50_ns"), "{report}");
        assert!(number("baseline_p99_ns") >= number("baseline_p50_ns"), "{report}");
        assert!(number("credentials_hit_p99_ns") >= number("credentials_hit_p50_ns"), "{report}");
    }
    let output = run(&["bench", "--server", "--config", config, "--seconds", "0.5", "--clients", "2"]);
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let stdout = text(&output.stdout);
    for needle in
        ["server  /v1/resolve", "bare hyper server", "/v1/credentials (cache hit)", "latency ratio", "errors: 0"]
    {
        assert!(stdout.contains(needle), "`{needle}` in {stdout}");
    }
    assert!(stdout.contains("1000 (synthesised"), "{stdout}");
}

/// A server whose answers differ from the in-process resolver's fails the run: here it serves a
/// configuration in which `alice`'s mapping names another role.
#[cfg(all(feature = "server", unix))]
#[test]
fn bench_server_exits_1_when_an_answer_differs_from_the_in_process_decision() {
    let out = dir("server-wrong");
    std::fs::create_dir_all(&out).expect("temp dir");
    let config = |alice: &str| {
        format!(
            r#"{{"RoleMappings": [
              {{"Role": "arn:aws:iam::123456789012:role/{alice}", "IdentifierType": "User", "Identifiers": ["alice"]}},
              {{"Role": "arn:aws:iam::123456789012:role/pii", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/pii/"]}}
            ]}}"#
        )
    };
    let (checked, served, requests) = (out.join("checked.json"), out.join("served.json"), out.join("requests.jsonl"));
    std::fs::write(&checked, config("alice")).expect("write");
    std::fs::write(&served, config("someone-else")).expect("write");
    std::fs::write(
        &requests,
        "{\"user\": \"bob\", \"path\": \"s3://lake/pii/1\"}\n{\"user\": \"alice\", \"path\": \"s3://lake/x\"}\n",
    )
    .expect("write");
    let [checked, served, requests] = [&checked, &served, &requests].map(|p| p.to_str().expect("UTF-8"));
    let args = ["bench", "--server", "--config", checked, "--requests", requests, "--seconds", "0.3", "--clients", "2"];
    let output = run(&[&args[..], &["--serve-config", served, "--format", "json"]].concat());
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).expect("the report is printed all the same");
    // Request 2 is wrong on /v1/resolve and on /v1/credentials; the timed answers repeat what was verified.
    assert_eq!(report["errors"], 2, "{report}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("error: 2 wrong or failed answer(s)"), "{stderr}");
    assert!(stderr.contains("/v1/resolve request 2") && stderr.contains("/v1/credentials request 2"), "{stderr}");
    assert!(stderr.contains("role/someone-else") && stderr.contains("role/alice"), "{stderr}");

    // The same configuration served: no error.
    let output = run(&[&args[..], &["--serve-config", checked]].concat());
    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    assert!(text(&output.stdout).contains("errors: 0"), "{}", text(&output.stdout));
}

#[cfg(all(feature = "server", unix))]
#[test]
fn bench_server_options_need_server() {
    let good = "examples/configs/multi-team.json";
    for extra in [["--clients", "4"], ["--transport", "tcp"]] {
        let output = run(&[&["bench", "--config", good][..], &extra[..]].concat());
        assert_eq!(output.status.code(), Some(2), "{extra:?}: {}", text(&output.stderr));
        assert!(text(&output.stderr).contains("--server"), "{}", text(&output.stderr));
    }
    let output = run(&["bench", "--server", "--config", good, "--clients", "0"]);
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
}
