//! `check` and `test` for CI, and the command line installed like any CLI: SARIF validated against the
//! official SARIF 2.1.0 schema, GitHub workflow commands that input cannot break out of, levels per
//! code, several files, colour only where it belongs, a closed pipe, JUnit for unusable input,
//! completions and the man page.
//!
//! The schema comes from `scripts/install-sarif-schema.sh` (`SARIF_SCHEMA`) and is checked with Python's
//! `jsonschema` from `scripts/install-moto.sh`'s virtual environment; `bash scripts/test.sh` installs
//! both.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;
use support::cli::{command, run};
use support::tempdir::TempDir;

const DUPLICATES: &str = "tests/golden/configs/duplicate-identifier.json";
const ERRORS: &str = "tests/golden/configs/errors.json";
const NOTES: &str = "tests/golden/configs/partially-shadowed-mapping.json";
const DESCRIBE: &str = "examples/configs/describe-security-configuration-output.json";

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn sarif_schema() -> PathBuf {
    let schema = std::env::var_os("SARIF_SCHEMA").map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/sarif-schema/sarif-2.1.0-rtm.5.json")
    });
    assert!(
        schema.is_file(),
        "no SARIF schema at `{}`: run the tests with `bash scripts/test.sh`, or `bash scripts/install-sarif-schema.sh` (needs npm)",
        schema.display()
    );
    schema
}

/// Validates `document` against the official SARIF 2.1.0 schema; the errors found, one a line.
fn sarif_schema_errors(document: &str, dir: &Path) -> String {
    let file = dir.join("out.sarif");
    std::fs::write(&file, document).expect("writable");
    let script = "import json, sys, jsonschema\n\
                  schema = json.load(open(sys.argv[1]))\n\
                  document = json.load(open(sys.argv[2]))\n\
                  validator = jsonschema.Draft4Validator(schema)\n\
                  for e in validator.iter_errors(document):\n    print(list(e.absolute_path), e.message)\n";
    let out = Command::new(support::moto::python())
        .args(["-c", script])
        .arg(sarif_schema())
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(out.status.success(), "the validator failed: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn sarif_is_valid_against_the_official_schema_with_rules_results_and_regions() {
    let temp = TempDir::new("ci-sarif");
    let dir = temp.path();
    let profile = ["--instance-profile", "arn:aws:iam::123456789012:instance-profile/A", "--instance-profile-role"];
    let out = run(&[
        &["check", DUPLICATES, ERRORS, DESCRIBE, NOTES, "--format", "sarif"][..],
        &profile,
        &["arn:aws:iam::123456789012:role/B"],
    ]
    .concat());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(sarif_schema_errors(&text, dir), "", "the SARIF output breaks the schema:\n{text}");

    let log: Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(log["version"], "2.1.0");
    let run = &log["runs"][0];
    let driver = &run["tool"]["driver"];
    assert_eq!(
        (driver["name"].as_str(), driver["version"].as_str()),
        (Some("emrfs-rolemap"), Some(env!("CARGO_PKG_VERSION")))
    );
    let rules: Vec<&str> = driver["rules"].as_array().expect("rules").iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(rules, emrfs_rolemap::Code::ALL.map(|c| c.as_str()), "a rule for every code, in order");
    assert!(
        driver["rules"]
            .as_array()
            .expect("rules")
            .iter()
            .all(|r| r["help"]["text"].as_str().is_some_and(|h| !h.is_empty()))
    );

    let results = run["results"].as_array().expect("results");
    let result = |rule: &str, uri: &str| {
        results
            .iter()
            .find(|r| r["ruleId"] == rule && r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == uri)
            .unwrap_or_else(|| panic!("no {rule} result for {uri} in {text}"))
    };
    // A positioned diagnostic: the value's whole span; and its related place.
    let duplicate = result("duplicate-identifier", DUPLICATES);
    assert_eq!(duplicate["level"], "warning");
    assert_eq!(
        duplicate["locations"][0]["physicalLocation"]["region"],
        serde_json::json!({"startLine": 2, "startColumn": 121, "endLine": 2, "endColumn": 131}),
        "`\"analysts\"` spans columns 121 to 130"
    );
    assert_eq!(duplicate["relatedLocations"][0]["physicalLocation"]["region"]["startColumn"], 98);
    assert_eq!(duplicate["relatedLocations"][0]["message"]["text"], "first written here");
    assert_eq!(result("unknown-identifier-type", ERRORS)["level"], "error");
    assert_eq!(result("partially-shadowed-mapping", NOTES)["level"], "note");
    // No position in the document: the file alone.
    let mismatch = result("instance-profile-mismatch", ERRORS);
    assert!(mismatch["locations"][0]["physicalLocation"].get("region").is_none(), "{mismatch}");
    // Positions inside the embedded document are not positions in the file: named in the message.
    let embedded = result("invalid-bucket-name", DESCRIBE);
    assert!(embedded["locations"][0]["physicalLocation"].get("region").is_none(), "{embedded}");
    assert!(embedded["message"]["text"].as_str().unwrap_or_default().contains("of the document embedded in"));

    // The validator does reject what breaks the schema.
    let broken = text.replacen("\"level\": \"warning\"", "\"level\": \"severe\"", 1);
    assert_ne!(sarif_schema_errors(&broken, dir), "", "the schema check caught nothing");
}

/// Decodes the workflow-command encoding.
fn decode(text: &str) -> String {
    text.replace("%0A", "\n").replace("%0D", "\r").replace("%3A", ":").replace("%2C", ",").replace("%25", "%")
}

#[test]
fn github_annotations_carry_file_line_column_title_and_cannot_start_another_command() {
    let out = run(&["check", DUPLICATES, ERRORS, "--format", "github"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.lines().any(|l| l.starts_with(&format!(
            "::error file={ERRORS},line=2,col=73,endLine=2,endColumn=80,title=unknown-identifier-type::unknown identifier type `Users`%0Ahelp: did you mean `User`?"
        ))),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("::notice ") && l.contains("title=redundant-identifier::")), "{text}");

    // A file name with `%`, `,`, `:` and LF, and messages that quote `%`, `::`, CR and LF from the file.
    let temp = TempDir::new("ci-github");
    let dir = temp.path();
    let name = dir.join("a,b:c%25\n::error::injected.json");
    let warning = r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "User",
        "Identifiers": ["x%0A::error::y", "x%0A::error::y"]}]}"#;
    std::fs::write(&name, warning).expect("writable");
    let error = dir.join("error.json");
    let config = r#"{"RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "User",
        "Identifiers": ["u"], "k\r\n::warning::z,a:b": 1}]}"#;
    std::fs::write(&error, config).expect("writable");
    let out = run(&["check", name.to_str().expect("UTF-8"), error.to_str().expect("UTF-8"), "--format", "github"]);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "one line per diagnostic, whatever the text holds:\n{text}");
    let parse = |line: &str| {
        let (command, rest) = line.strip_prefix("::").and_then(|l| l.split_once(' ')).expect("a command");
        let (properties, message) = rest.split_once("::").expect("properties, then the message");
        let file = properties.split(',').find_map(|p| p.strip_prefix("file=")).map(decode);
        (command.to_owned(), file, message.to_owned())
    };
    let (command, file, message) = parse(lines[0]);
    assert_eq!(command, "warning");
    assert_eq!(file, Some(dir.join(r"a,b:c%25\n::error::injected.json").to_string_lossy().into_owned()), "{text}");
    assert!(decode(&message).starts_with("`x%0A::error::y` repeats identifier 0"), "{text}");
    let (command, file, message) = parse(lines[1]);
    assert_eq!((command.as_str(), file), ("error", Some(error.to_string_lossy().into_owned())));
    assert!(!message.contains('\r') && decode(&message).contains(r"`k\r\n::warning::z,a:b`"), "{text}");
}

#[test]
fn levels_per_code_allow_warn_and_deny_like_clippy() {
    let codes = |out: &Output| -> Vec<(String, String)> {
        let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
        all.as_array()
            .expect("an array")
            .iter()
            .map(|d| {
                (
                    d["code"].as_str().unwrap_or_default().to_owned(),
                    d["severity"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let json = ["--format", "json"];
    let plain = run(&[&["check", NOTES][..], &json].concat());
    assert_eq!(
        (plain.status.code(), codes(&plain)),
        (Some(0), vec![("partially-shadowed-mapping".into(), "note".into())])
    );
    // A denied note fails, whatever its default severity.
    let denied = run(&[&["check", NOTES, "--deny", "partially-shadowed-mapping"][..], &json].concat());
    assert_eq!(
        (denied.status.code(), codes(&denied)),
        (Some(1), vec![("partially-shadowed-mapping".into(), "error".into())])
    );
    // A note raised to a warning fails with --deny-warnings, and not without it.
    let warned = run(&["check", NOTES, "--warn", "partially-shadowed-mapping"]);
    assert_eq!(warned.status.code(), Some(0));
    let warned = run(&["check", NOTES, "--warn", "partially-shadowed-mapping", "--deny-warnings"]);
    assert_eq!(warned.status.code(), Some(1), "{}", stdout(&warned));
    assert!(stdout(&warned).starts_with("warning[partially-shadowed-mapping]"), "{}", stdout(&warned));
    // Allowed: gone.
    let allowed =
        run(&[&["check", DUPLICATES, "--allow", "duplicate-identifier", "--deny-warnings"][..], &json].concat());
    assert_eq!(
        (allowed.status.code(), codes(&allowed)),
        (Some(0), vec![("redundant-identifier".into(), "note".into())])
    );

    // Usage errors: an unknown code (with a suggestion), an error allowed, a code given two levels.
    let unknown = run(&["check", NOTES, "--allow", "partialy-shadowed-mapping"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("did you mean `partially-shadowed-mapping`?"), "{}", stderr(&unknown));
    let error = run(&["check", NOTES, "--allow", "invalid-role-arn"]);
    assert_eq!(error.status.code(), Some(2));
    assert!(stderr(&error).contains("`invalid-role-arn` is an error"), "{}", stderr(&error));
    assert!(stdout(&error).is_empty(), "nothing is checked: {}", stdout(&error));
    let twice = run(&["check", NOTES, "--allow", "prefix-boundary", "--deny", "prefix-boundary"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(stderr(&twice).contains("both --allow and --deny"), "{}", stderr(&twice));
    // Denying an error changes nothing.
    assert_eq!(run(&["check", ERRORS, "--deny", "invalid-role-arn"]).status.code(), Some(1));
}

#[test]
fn several_files_each_named_and_the_worst_status_wins() {
    let out = run(&["check", "--config", DUPLICATES, NOTES, "--format", "json"]);
    assert_eq!(out.status.code(), Some(0));
    let all: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let files: Vec<&str> = all.as_array().expect("array").iter().filter_map(|d| d["file"].as_str()).collect();
    assert_eq!(
        files,
        [DUPLICATES, DUPLICATES, DUPLICATES, NOTES],
        "--config files come first, each diagnostic names its file"
    );
    let text = stdout(&run(&["check", "--config", DUPLICATES, "--config", NOTES]));
    assert!(text.contains(&format!("{DUPLICATES}: ok, ")) && text.contains(&format!("{NOTES}: ok, ")), "{text}");

    assert_eq!(run(&["check", DUPLICATES, ERRORS]).status.code(), Some(1), "an error in one file fails the run");
    let missing = run(&["check", ERRORS, "does-not-exist.json", DUPLICATES]);
    assert_eq!(missing.status.code(), Some(2), "an unreadable file is worse than errors");
    assert!(stderr(&missing).contains("cannot read `does-not-exist.json`"), "{}", stderr(&missing));
    assert!(stdout(&missing).contains(&format!("{DUPLICATES}: ok")), "the other files are still checked");
    let stdin_twice = run(&["check", "-", "-"]);
    assert_eq!(stdin_twice.status.code(), Some(2));
    assert_eq!(run(&["check"]).status.code(), Some(2), "at least one file");
}

#[test]
fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
    let escape = "\u{1b}[";
    let always = stdout(&run(&["check", DUPLICATES, "--color", "always"]));
    assert!(always.contains(escape), "{always}");
    let never = stdout(&run(&["check", DUPLICATES, "--color", "never"]));
    assert!(!never.contains('\u{1b}'), "{never}");
    let piped = stdout(&run(&["check", DUPLICATES]));
    assert_eq!(piped, never, "no colour into a pipe");
    // On a terminal (`script` gives the command one): colour, unless NO_COLOR is set.
    let on_terminal = |no_color: Option<&str>| {
        let binary = env!("CARGO_BIN_EXE_emrfs-rolemap");
        let mut script = Command::new("script");
        script
            .args(["-qec", &format!("{binary} check {DUPLICATES}"), "/dev/null"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_remove("NO_COLOR")
            .env("TERM", "xterm");
        if let Some(value) = no_color {
            script.env("NO_COLOR", value);
        }
        let out = script.output().expect("`script` (util-linux) runs; install util-linux");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(on_terminal(None).contains(escape), "{}", on_terminal(None));
    let no_color = on_terminal(Some("1"));
    assert!(!no_color.contains(escape) && no_color.contains("duplicate-identifier"), "{no_color}");
    let forced =
        stdout(&command(&["check", DUPLICATES, "--color", "always"]).env("NO_COLOR", "1").output().expect("runs"));
    assert!(forced.contains(escape), "--color always wins over NO_COLOR");
}

#[test]
fn a_closed_pipe_ends_the_command_quietly_with_status_0() {
    // Enough output to fill the pipe: a warning per identifier.
    let temp = TempDir::new("ci-pipe");
    let dir = temp.path();
    let identifiers: Vec<String> = (0..3000).map(|i| format!("u{i}@EXAMPLE.COM")).collect();
    let config = serde_json::json!({"RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "User", "Identifiers": identifiers}
    ]});
    let file = dir.join("many.json");
    std::fs::write(&file, config.to_string()).expect("writable");
    for format in ["text", "json", "sarif", "github"] {
        let mut child = command(&["check", file.to_str().expect("UTF-8"), "--format", format])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("runs");
        let mut first = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut first).expect("a line");
        assert!(!first.is_empty());
        // The reader is gone (`| head -1`).
        let out = child.wait_with_output().expect("ends");
        assert_eq!(out.status.code(), Some(0), "{format}: {}", stderr(&out));
        assert_eq!(stderr(&out), "", "{format}: nothing on standard error");
    }
}

#[test]
fn junit_for_an_unusable_configuration_or_cases_file_is_a_document_with_one_error() {
    let temp = TempDir::new("ci-junit");
    let dir = temp.path();
    let cases = dir.join("nightly.cases.json");
    std::fs::write(&cases, r#"{"cases": [{"name": "x", "expect": {}}]}"#).expect("writable");
    let cases = cases.to_str().expect("UTF-8");
    for (config, cases, says) in [
        (ERRORS, cases, "has 6 error(s)"),
        ("examples/configs/aws-docs-example.json", DUPLICATES, "invalid cases file"),
        ("does-not-exist.json", cases, "cannot read"),
    ] {
        let out = run(&["test", "--config", config, "--cases", cases, "--format", "junit"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(says), "{}", stderr(&out));
        let xml = stdout(&out);
        assert!(xml.contains(r#"tests="1" failures="0" errors="1""#), "{xml}");
        assert_eq!(xml.matches("<error message=").count(), 1, "{xml}");
        assert!(xml.contains(says) && xml.trim_end().ends_with("</testsuites>"), "{xml}");
    }
    // The class name is the cases file's name without its extension; every case has a time.
    let ok =
        run(&["test", "--config", "examples/configs/aws-docs-example.json", "--cases", cases, "--format", "junit"]);
    let xml = stdout(&ok);
    assert!(xml.contains(r#"<testcase name="x" classname="nightly.cases" time="0."#), "{xml}");
    assert!(xml.contains(&format!(r#"file="{cases}""#)) && xml.contains(r#" timestamp="20"#), "{xml}");
}

#[test]
fn completions_for_every_shell_and_a_man_page() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = run(&["completions", shell]);
        assert_eq!(out.status.code(), Some(0), "{shell}: {}", stderr(&out));
        let script = stdout(&out);
        assert!(script.contains("emrfs-rolemap") && script.contains("--deny-warnings"), "{shell}: {script}");
    }
    // The bash script is valid bash.
    let script = stdout(&run(&["completions", "bash"]));
    let mut bash = Command::new("bash").args(["-n"]).stdin(Stdio::piped()).spawn().expect("bash runs");
    std::io::Write::write_all(&mut bash.stdin.take().expect("piped"), script.as_bytes()).expect("written");
    assert!(bash.wait().expect("bash ends").success(), "`completions bash | bash -n` fails");
    let man = stdout(&run(&["man"]));
    assert!(man.starts_with(".ie") || man.starts_with(".TH"), "roff: {}", &man[..man.len().min(200)]);
    assert!(man.contains(".TH emrfs-rolemap") && man.contains("completions"), "{man}");
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn bench_writes_no_progress_into_a_standard_error_that_is_not_a_terminal() {
    let out = run(&["bench", "--config", "examples/configs/aws-docs-example.json", "--seconds", "1.5"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!stderr(&out).contains('\r') && !stderr(&out).contains("benchmarking"), "{:?}", stderr(&out));
}
