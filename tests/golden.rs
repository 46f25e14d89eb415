//! Golden outputs: `check` on a configuration per kind of warning and note, and every `policy` command,
//! each in text and in JSON; `check` in colour, as SARIF and as GitHub workflow commands; `test` as
//! JUnit; `diff` on the shipped examples in text, JSON and Markdown. Each is compared byte for byte
//! with the files under `tests/golden/`, with its exit status.
//!
//! After an intended change of output, regenerate the files with
//! `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff before committing it.

mod support;

use std::path::PathBuf;
use support::cli::run;

const R: &str = "arn:aws:iam::123456789012:role";

/// A command whose outputs are pinned: for each `--format` of `outputs`, `tests/golden/{name}.{extension}`.
struct Case {
    name: &'static str,
    args: Vec<String>,
    status: i32,
    outputs: &'static [(&'static str, &'static str)],
}

/// Text and JSON, the outputs of most cases.
const TEXT_AND_JSON: &[(&str, &str)] = &[("text", "txt"), ("json", "json")];

fn check(name: &'static str, config: &str, extra: &[&str], status: i32) -> Case {
    let mut args = vec!["check".to_owned(), "--config".to_owned(), config.to_owned()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Case { name, args, status, outputs: TEXT_AND_JSON }
}

/// `check` on `tests/golden/configs/{config}.json`.
fn check_golden(name: &'static str, config: &str, extra: &[&str], status: i32) -> Case {
    check(name, &format!("tests/golden/configs/{config}.json"), extra, status)
}

fn policy(name: &'static str, args: &[&str]) -> Case {
    let mut all = vec!["policy".to_owned()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Case { name, args: all, status: 0, outputs: TEXT_AND_JSON }
}

/// `diff` of two configurations: shipped examples (`examples/configs/{old}.json` and `{new}.json`), or
/// paths; in text, JSON and Markdown.
fn diff(name: &'static str, old: &str, new: &str, extra: &[&str], status: i32) -> Case {
    let example =
        |name: &str| if name.contains('/') { name.to_owned() } else { format!("examples/configs/{name}.json") };
    let mut args = vec!["diff".to_owned(), "--old".to_owned(), example(old), "--new".to_owned(), example(new)];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    Case { name, args, status, outputs: &[("text", "txt"), ("json", "json"), ("markdown", "md")] }
}

/// `case` with other outputs.
fn with_outputs(case: Case, outputs: &'static [(&'static str, &'static str)]) -> Case {
    Case { outputs, ..case }
}

/// The configurations the CI outputs are shown on: warnings and notes with related places, errors,
/// and the describe form.
const CI_CONFIGS: [&str; 4] = [
    "tests/golden/configs/duplicate-identifier.json",
    "tests/golden/configs/shadowed-identifier.json",
    "tests/golden/configs/errors.json",
    "examples/configs/describe-security-configuration-output.json",
];

fn check_all(
    name: &'static str,
    extra: &[&str],
    status: i32,
    outputs: &'static [(&'static str, &'static str)],
) -> Case {
    let mut args = vec!["check".to_owned()];
    args.extend(CI_CONFIGS.iter().chain(extra).map(|a| (*a).to_owned()));
    Case { name, args, status, outputs }
}

fn cases() -> Vec<Case> {
    let profile = "arn:aws:iam::123456789012:instance-profile/EMR_EC2_Custom";
    let multi = "examples/configs/multi-team.json";
    let multi_role = "arn:aws:iam::111122223333:role/EMR_EC2_DefaultRole";
    vec![
        check_golden("check/shadowed-identifier", "shadowed-identifier", &[], 0),
        check_golden("check/unreachable-mapping", "unreachable-mapping", &[], 0),
        check_golden("check/duplicate-and-redundant-identifier", "duplicate-identifier", &[], 0),
        check_golden("check/partially-shadowed-mapping", "partially-shadowed-mapping", &[], 0),
        check_golden("check/prefix-boundary", "prefix-boundary", &[], 0),
        check_golden("check/prefix-boundary-segment-mode", "prefix-boundary", &["--prefix-match", "segment"], 0),
        check_golden("check/invalid-bucket-name", "invalid-bucket-name", &[], 0),
        check_golden("check/literal-glob-characters", "literal-glob-characters", &[], 0),
        check_golden("check/literal-glob-characters-with-globs", "literal-glob-characters", &["--globs"], 0),
        check_golden("check/suspicious-characters", "suspicious-characters", &[], 0),
        check_golden("check/kerberos-principal", "kerberos-principal", &[], 0),
        check_golden("check/globs", "globs", &["--globs"], 0),
        check_golden("check/string-mode", "prefix-modes", &[], 0),
        check_golden("check/segment-mode", "prefix-modes", &["--prefix-match", "segment"], 0),
        check_golden("check/deny-warnings", "shadowed-identifier", &["--deny-warnings"], 1),
        check_golden("check/deny-warnings-notes-only", "partially-shadowed-mapping", &["--deny-warnings"], 0),
        check_golden(
            "check/instance-profile-mismatch",
            "clean",
            &["--instance-profile", profile, "--instance-profile-role", &format!("{R}/EMR_EC2_CustomRole")],
            1,
        ),
        check_golden(
            "check/instance-profile-match",
            "clean",
            &["--instance-profile", profile, "--instance-profile-role", &format!("{R}/emr/EMR_EC2_Custom")],
            0,
        ),
        check("check/aws-docs-example", "examples/configs/aws-docs-example.json", &[], 0),
        check("check/describe-output", "examples/configs/describe-security-configuration-output.json", &[], 0),
        check_golden("check/errors", "errors", &[], 1),
        with_outputs(
            check_golden("check/colour", "duplicate-identifier", &["--color", "always"], 0),
            &[("text", "txt")],
        ),
        check_all(
            "check/several-files",
            &["--deny", "redundant-identifier", "--allow", "invalid-bucket-name"],
            1,
            TEXT_AND_JSON,
        ),
        check_all(
            "check/sarif",
            &["--instance-profile", profile, "--instance-profile-role", &format!("{R}/EMR_EC2_CustomRole")],
            1,
            &[("sarif", "json")],
        ),
        check_all("check/github", &[], 1, &[("github", "txt")]),
        Case {
            name: "test/junit",
            args: [
                "test",
                "--config",
                "examples/configs/aws-docs-example.json",
                "--cases",
                "tests/golden/configs/cases.json",
            ]
            .map(str::to_owned)
            .to_vec(),
            status: 1,
            outputs: &[("junit", "xml")],
        },
        Case {
            name: "test/junit-unusable",
            args: [
                "test",
                "--config",
                "tests/golden/configs/errors.json",
                "--cases",
                "tests/golden/configs/cases.json",
            ]
            .map(str::to_owned)
            .to_vec(),
            status: 2,
            outputs: &[("junit", "xml")],
        },
        policy("policy/trust", &["trust", "--config", multi, "--instance-profile-role", multi_role]),
        policy(
            "policy/trust-source-identity",
            &["trust", "--config", multi, "--instance-profile-role", multi_role, "--source-identity"],
        ),
        diff("diff/same-mappings", "aws-docs-example", "describe-security-configuration-output", &[], 0),
        diff("diff/multi-team-next", "multi-team", "multi-team-next", &[], 1),
        diff("diff/multi-team-next-same-role", "multi-team", "multi-team-next", &["--include-same-role"], 1),
        diff("diff/multi-team-next-truncated", "multi-team", "multi-team-next", &["--max-changes", "3"], 1),
        diff(
            "diff/multi-team-back-segment-mode",
            "multi-team-next",
            "multi-team",
            &["--prefix-match", "segment", "--fallback-role", multi_role],
            1,
        ),
        diff("diff/globs", "tests/golden/configs/globs.json", "tests/golden/configs/globs-next.json", &["--globs"], 1),
        policy("policy/assume", &["assume", "--config", multi]),
        policy("policy/assume-source-identity", &["assume", "--config", multi, "--source-identity"]),
        policy("policy/pass-role", &["pass-role"]),
        policy(
            "policy/pass-role-custom",
            &[
                "pass-role",
                "--service-role",
                "service-role/EMR_Custom",
                "--ec2-role",
                "EMR_EC2_Custom",
                "--autoscaling-role",
                "EMR_AutoScaling_Custom",
                "--account",
                "111122223333",
            ],
        ),
    ]
}

fn golden_path(name: &str, extension: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(format!("{name}.{extension}"))
}

/// Compares `actual` with the golden file, or writes it when `UPDATE_GOLDEN` is set; returns a
/// description of the difference.
fn compare(name: &str, extension: &str, actual: &str) -> Option<String> {
    let path = golden_path(name, extension);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("golden directory");
        std::fs::write(&path, actual).expect("golden file written");
        return None;
    }
    match std::fs::read_to_string(&path) {
        Ok(expected) if expected == actual => None,
        Ok(expected) => {
            let line = expected.lines().zip(actual.lines()).position(|(e, a)| e != a).map_or_else(
                || {
                    format!(
                        "the outputs differ in length ({} and {} lines)",
                        expected.lines().count(),
                        actual.lines().count()
                    )
                },
                |i| format!("first difference at line {}", i + 1),
            );
            Some(format!("{}: {line}; actual output:\n{actual}", path.display()))
        }
        Err(e) => Some(format!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display())),
    }
}

/// JUnit's `time="…"` and `timestamp="…"` values, which change from run to run, as `time="T"` and
/// `timestamp="T"`.
fn without_times(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find([' ']) {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        for attribute in ["time=\"", "timestamp=\""] {
            if let Some(value) = rest.strip_prefix(attribute) {
                let end = value.find('"').expect("a closed attribute");
                out.push_str(attribute);
                out.push('T');
                rest = &value[end..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn outputs_match_the_golden_files() {
    let mut failures = Vec::new();
    for case in cases() {
        for (format, extension) in case.outputs {
            let mut args = case.args.clone();
            args.extend(["--format".to_owned(), (*format).to_owned()]);
            let output = run(&args);
            let status = output.status.code();
            if status != Some(case.status) {
                failures.push(format!(
                    "{} ({format}): exit status {status:?}, expected {}; stderr: {}",
                    case.name,
                    case.status,
                    String::from_utf8_lossy(&output.stderr)
                ));
            }
            let mut text = String::from_utf8(output.stdout).expect("UTF-8 output");
            if *extension == "json"
                && let Err(e) = serde_json::from_str::<serde_json::Value>(&text)
            {
                failures.push(format!("{}: the JSON output does not parse: {e}\n{text}", case.name));
            }
            if *format == "junit" {
                text = without_times(&text);
            }
            failures.extend(compare(case.name, extension, &text));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn junit_times_are_blanked_and_nothing_else() {
    assert_eq!(
        without_times(r#"<a name="x time" time="0.012" timestamp="2026-01-02T03:04:05" b="time="/>"#),
        r#"<a name="x time" time="T" timestamp="T" b="time="/>"#
    );
}

/// Every golden file belongs to a case, so that a renamed case leaves no stale file behind.
#[test]
fn every_golden_file_has_a_case() {
    let names: Vec<String> = cases().iter().map(|c| c.name.to_owned()).collect();
    for directory in ["check", "diff", "policy", "test"] {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(directory);
        for entry in std::fs::read_dir(&dir).expect("the golden directory exists") {
            let file = entry.expect("readable").file_name().to_string_lossy().into_owned();
            let stem = file.rsplit_once('.').map_or(file.as_str(), |(stem, _)| stem);
            let name = format!("{directory}/{stem}");
            assert!(names.contains(&name), "{name}: golden file without a case");
        }
    }
}

/// The README's `diff` example is the command's output, word for word.
#[test]
fn the_readme_shows_the_golden_diff() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("the README");
    let golden = std::fs::read_to_string(golden_path("diff/multi-team-next", "txt")).expect("the golden file");
    let start = readme.find("```text\n18. requests by").expect("the README shows change 18 of the diff") + 8;
    let shown = &readme[start..start + readme[start..].find("```").expect("the block ends")];
    assert!(golden.contains(shown), "the README's example is not in {golden}");
    let count = format!("prints {} numbered changes", golden.lines().filter(|l| l.starts_with("   witness:")).count());
    assert!(readme.contains(&count), "the README should say it {count}");
}
