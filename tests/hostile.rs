//! Hostile and extreme input: every file of `tests/corpus/` and a few generated giants (a 100 MB file,
//! a million identifiers, a 1 MB key, a user in 10,000 groups) get their exact outcome, from the
//! library and from the built binary, which must exit 0, 1 or 2 with a message — never panic.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use emrfs_rolemap::{
    Request, ResolverBuilder, ResolverOptions, S3Path, S3PathError, SecurityConfiguration, Severity, check,
};
use support::cli;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// An expected error: `(code, pointer, line, column)`.
type ExpectedError = (&'static str, &'static str, u32, u32);

/// Each corpus file and its errors; an empty list means valid.
const EXPECTED: &[(&str, &[ExpectedError])] = &[
    ("byte-order-mark.json", &[]),
    ("control-in-identifier.json", &[("control-character", "/RoleMappings/0/Identifiers/0", 7, 5)]),
    ("deeply-nested-objects.json", &[("json-syntax", "", 1, 641)]),
    ("deeply-nested.json", &[("json-syntax", "", 1, 145)]),
    ("describe-with-broken-embedded.json", &[("json-syntax", "", 1, 73)]),
    ("describe-with-object.json", &[("wrong-type", "/SecurityConfiguration", 1, 40)]),
    ("duplicate-keys-in-mapping.json", &[("duplicate-key", "/RoleMappings/0/Identifiers", 1, 112)]),
    ("duplicate-role-mappings.json", &[("duplicate-key", "/RoleMappings", 1, 114)]),
    ("empty-object.json", &[("missing-role-mappings", "", 1, 1)]),
    ("empty.json", &[("json-syntax", "", 1, 1)]),
    ("huge-number.json", &[]),
    ("invalid-utf8.json", &[("invalid-utf8", "", 7, 9)]),
    ("lone-surrogate.json", &[("json-syntax", "", 1, 113)]),
    ("long-key-prefix.json", &[("invalid-prefix", "/RoleMappings/0/Identifiers/0", 7, 5)]),
    ("nul-byte-before-document.json", &[("json-syntax", "", 1, 1)]),
    ("nul-in-identifier.json", &[("control-character", "/RoleMappings/0/Identifiers/0", 7, 5)]),
    ("null.json", &[("unrecognized-document", "", 1, 1)]),
    (
        "numbers-where-strings-belong.json",
        &[
            ("wrong-type", "/RoleMappings/0/Role", 1, 28),
            ("wrong-type", "/RoleMappings/0/IdentifierType", 1, 60),
            ("wrong-type", "/RoleMappings/0/Identifiers/0", 1, 79),
            ("wrong-type", "/RoleMappings/0/Identifiers/1", 1, 88),
            ("wrong-type", "/RoleMappings/0/Identifiers/2", 1, 92),
            ("wrong-type", "/RoleMappings/0/Identifiers/3", 1, 98),
        ],
    ),
    ("raw-control-in-string.json", &[("json-syntax", "", 7, 9)]),
    ("top-level-array.json", &[("unrecognized-document", "", 1, 1)]),
    ("trailing-garbage.json", &[("json-syntax", "", 11, 2)]),
    ("truncated.json", &[("json-syntax", "", 7, 11)]),
    ("utf16.json", &[("invalid-utf8", "", 1, 1)]),
    ("valid-unicode-identifiers.json", &[]),
    ("whitespace-only.json", &[("json-syntax", "", 3, 1)]),
];

fn errors_of(bytes: &[u8]) -> Vec<(String, String, u32, u32)> {
    check(bytes, &ResolverOptions::default())
        .diagnostics
        .iter()
        .filter(|d| d.severity() == Severity::Error)
        .map(|d| {
            (
                d.code().as_str().to_owned(),
                d.pointer().to_owned(),
                d.location().map_or(0, |at| at.line),
                d.location().map_or(0, |at| at.column),
            )
        })
        .collect()
}

#[test]
fn every_corpus_file_has_its_exact_outcome() {
    let mut files: Vec<String> = std::fs::read_dir(corpus())
        .expect("the corpus exists")
        .map(|e| e.expect("readable").file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let listed: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    assert_eq!(files, listed, "every corpus file has an expectation, and every expectation a file");
    for (name, expected) in EXPECTED {
        let bytes = std::fs::read(corpus().join(name)).expect("readable");
        let expected: Vec<(String, String, u32, u32)> =
            expected.iter().map(|(c, p, l, col)| (c.to_string(), p.to_string(), *l, *col)).collect();
        assert_eq!(errors_of(&bytes), expected, "{name}");
        assert_eq!(SecurityConfiguration::from_slice(&bytes).is_ok(), expected.is_empty(), "{name}");
    }
}

fn binary(args: &[&str]) -> Output {
    cli::command(args).env("AWS_EC2_METADATA_DISABLED", "true").output().expect("the binary runs")
}

fn assert_clean_exit(output: &Output, what: &str) -> i32 {
    let code = output.status.code().unwrap_or_else(|| panic!("{what}: killed by a signal"));
    assert!((0..=2).contains(&code), "{what}: exit status {code}\n{}", String::from_utf8_lossy(&output.stderr));
    let said = output.stdout.len() + output.stderr.len();
    assert!(said > 0, "{what}: exited {code} without a word");
    code
}

#[test]
fn the_binary_exits_0_1_or_2_with_a_message_on_every_corpus_file() {
    let requests = corpus().join("requests.jsonl");
    let requests = requests.to_str().expect("utf-8 path");
    for (name, expected) in EXPECTED {
        let file = corpus().join(name);
        let file = file.to_str().expect("utf-8 path");
        let valid = expected.is_empty();
        let checked = assert_clean_exit(&binary(&["check", "--config", file]), &format!("check {name}"));
        assert_eq!(checked, if valid { 0 } else { 1 }, "check {name}");
        let json = binary(&["check", "--config", file, "--format", "json"]);
        assert_clean_exit(&json, &format!("check --format json {name}"));
        let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("check prints JSON");
        assert!(parsed.is_array(), "{name}");
        for args in [
            vec!["resolve", "--config", file, "--user", "alice", "--path", "s3://b/k"],
            vec!["explain", "--config", file, "--group", "g", "--format", "json"],
            vec!["resolve", "--config", file, "--requests", requests],
            vec!["test", "--config", file, "--cases", file],
            vec!["policy", "assume", "--config", file],
            vec!["diff", "--old", file, "--new", "examples/configs/aws-docs-example.json"],
            vec!["policy", "trust", "--config", file, "--instance-profile-role", "arn:aws:iam::123456789012:role/ec2"],
        ] {
            let code = assert_clean_exit(&binary(&args), &format!("{args:?}"));
            if !valid {
                assert_eq!(code, 2, "an unusable configuration exits 2: {args:?}");
            }
        }
        if !valid && cfg!(feature = "sts") {
            // Refused before any STS call: the endpoint is a closed local port that is never reached.
            let args = [
                "credentials",
                "--config",
                file,
                "--user",
                "u",
                "--path",
                "s3://b/k",
                "--region",
                "us-east-1",
                "--sts-endpoint",
                "http://127.0.0.1:9",
            ];
            assert_eq!(assert_clean_exit(&binary(&args), &format!("{args:?}")), 2, "{name}");
        }
    }
}

#[test]
fn bad_request_lines_each_get_an_error_line() {
    let config = corpus().join("valid-unicode-identifiers.json");
    let requests = corpus().join("requests.jsonl");
    let out = binary(&[
        "resolve",
        "--config",
        config.to_str().expect("utf-8"),
        "--requests",
        requests.to_str().expect("utf-8"),
    ]);
    assert_eq!(assert_clean_exit(&out, "batch"), 1);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    let errors: Vec<&str> = lines.iter().filter_map(|l| l["error"]["message"].as_str()).collect();
    assert_eq!(lines.len(), 10, "one answer per non-blank line");
    assert_eq!(errors.len(), 7, "{errors:?}");
    for expected in [
        "longer than 1024 bytes",
        "not valid UTF-8",
        "duplicate field `user`",
        "expected a JSON object",
        "expected a sequence",
        "the bucket is empty",
    ] {
        assert!(errors.iter().any(|e| e.contains(expected)), "no error says {expected:?}: {errors:?}");
    }
    let answers: Vec<&serde_json::Value> = lines.iter().filter(|l| l.get("decision").is_some()).collect();
    assert_eq!(answers.len(), 3, "NUL in a user, control characters in a key and an upper-case scheme still resolve");
    assert!(answers.iter().all(|a| a["decision"] == "fallback"));
}

#[test]
fn a_100_megabyte_file_is_refused_without_being_read_whole() {
    let big = std::env::temp_dir().join(format!("emrfs-rolemap-100mb-{}.json", std::process::id()));
    let mut text = String::from("{\"RoleMappings\": [], \"padding\": \"");
    text.push_str(&"x".repeat(100 * 1024 * 1024));
    text.push_str("\"}");
    std::fs::write(&big, &text).expect("writable");
    assert!(text.len() > SecurityConfiguration::MAX_BYTES);
    assert_eq!(errors_of(text.as_bytes()), vec![("document-too-large".to_owned(), String::new(), 1, 1)]);
    let out = binary(&["check", "--config", big.to_str().expect("utf-8"), "--format", "json"]);
    assert_eq!(assert_clean_exit(&out, "check 100 MB"), 1);
    let diagnostics: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(diagnostics[0]["code"], "document-too-large");
    let out = binary(&["resolve", "--config", big.to_str().expect("utf-8"), "--user", "u"]);
    assert_eq!(assert_clean_exit(&out, "resolve 100 MB"), 2);
    std::fs::remove_file(&big).expect("removable");
}

#[test]
fn a_million_identifiers_compile_and_resolve() {
    let users: Vec<String> = (0..1_000_000).map(|i| format!("user-{i}")).collect();
    let prefixes: Vec<String> = (0..1_000).map(|i| format!("s3://bucket-{}/team-{i}/", i % 10)).collect();
    let text = serde_json::json!({"RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/users", "IdentifierType": "User", "Identifiers": users},
        {"Role": "arn:aws:iam::123456789012:role/prefixes", "IdentifierType": "Prefix", "Identifiers": prefixes},
    ]})
    .to_string();
    let config = SecurityConfiguration::from_json(&text).expect("valid");
    assert_eq!(config.identifier_count(), 1_001_000);
    let resolver = ResolverBuilder::new().build(&config).expect("builds");
    let principal = resolver.prepare(Some("user-999999"), &[] as &[&str]);
    assert_eq!(principal.resolve(None).mapping().map(|m| m.identifier), Some("user-999999"));
    let path = S3Path::parse("s3://bucket-7/team-997/x").expect("valid");
    let nobody = resolver.prepare(Some("nobody"), &[] as &[&str]);
    assert_eq!(nobody.resolve(Some(&path)).mapping().map(|m| m.identifier), Some("s3://bucket-7/team-997/"));
}

#[test]
fn a_one_megabyte_key_is_an_invalid_request_and_a_deep_trie_is_walked_without_recursion() {
    let key = "k/".repeat(512 * 1024);
    assert_eq!(S3Path::parse(&format!("s3://b/{key}")), Err(S3PathError::KeyTooLong));
    // The deepest trie a valid configuration can hold: many nested prefixes of up to 1024 bytes.
    let prefixes: Vec<String> = (1..=512).map(|depth| format!("s3://b/{}", "k/".repeat(depth))).collect();
    let text = serde_json::json!({"RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/deep", "IdentifierType": "Prefix", "Identifiers": prefixes},
    ]})
    .to_string();
    let resolver =
        ResolverBuilder::new().build(&SecurityConfiguration::from_json(&text).expect("valid")).expect("builds");
    let deepest = format!("s3://b/{}", "k/".repeat(512));
    let path = S3Path::parse(&deepest).expect("1024-byte key");
    let resolution = resolver.resolve(&Request::new().path(path));
    assert_eq!(
        resolution.mapping().map(|m| m.identifier.len()),
        Some("s3://b/".len() + 2),
        "the shortest prefix is first"
    );
}

#[test]
fn a_user_in_ten_thousand_groups_resolves_to_the_first_matching_mapping() {
    let text = serde_json::json!({"RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/late", "IdentifierType": "Group", "Identifiers": ["group-9999"]},
        {"Role": "arn:aws:iam::123456789012:role/early", "IdentifierType": "Group", "Identifiers": ["group-0"]},
    ]})
    .to_string();
    let resolver =
        ResolverBuilder::new().build(&SecurityConfiguration::from_json(&text).expect("valid")).expect("builds");
    let groups: Vec<String> = (0..10_000).map(|i| format!("group-{i}")).collect();
    let request = Request::new().user("u").groups(&groups);
    assert_eq!(resolver.resolve(&request).mapping_index(), Some(0), "mapping order decides, not group order");
    assert_eq!(resolver.explain(&request).resolution.mapping_index(), Some(0));
    assert_eq!(resolver.prepare(Some("u"), &groups).resolve(None).mapping_index(), Some(0));
}

// ---- terminal escapes ---------------------------------------------------------------------------

/// What hostile input puts in text a terminal shows: ESC starting a colour sequence, BEL, the C1 control
/// CSI, DEL and a right-to-left override.
const HOSTILE: &str = "\u{1b}[31m\u{7}\u{9b}\u{7f}\u{202e}";
/// [`HOSTILE`] as every human-readable output shows it.
const HOSTILE_SHOWN: &str = r"\u{1b}[31m\u{7}\u{9b}\u{7f}\u{202e}";
/// The raw characters of [`HOSTILE`] that must never reach a terminal.
const RAW: [char; 5] = ['\u{1b}', '\u{7}', '\u{9b}', '\u{7f}', '\u{202e}'];
/// The part of [`HOSTILE`] that identifiers may hold (control characters are errors there), and how it shows.
const BIDI: &str = "\u{202e}";
const BIDI_SHOWN: &str = r"\u{202e}";

/// Asserts that `text` holds none of the [`RAW`] characters, and each of `shown`.
#[track_caller]
fn assert_shown_escaped(text: &str, shown: &[&str], what: &str) {
    for c in RAW {
        assert!(!text.contains(c), "{what}: the raw character U+{:04X} reaches the terminal in\n{text:?}", c as u32);
    }
    for s in shown {
        assert!(text.contains(s), "{what}: `{s}` is not shown in\n{text}");
    }
}

/// `{"RoleMappings": mappings}` as JSON text: serde_json writes C0 controls as `\u00XX` escapes and every
/// other character raw, so DEL, C1 controls and the override reach the source excerpts as they are.
fn role_mappings(mappings: serde_json::Value) -> String {
    serde_json::json!({ "RoleMappings": mappings }).to_string()
}

/// `{"Role": ROLE, "IdentifierType": kind, "Identifiers": identifiers}`.
fn mapping(kind: &str, identifiers: &[String]) -> serde_json::Value {
    serde_json::json!({"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": kind, "Identifiers": identifiers})
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    serde_json::to_string(text).expect("a string serializes")
}

#[test]
fn terminal_escapes_in_input_are_shown_escaped_in_every_message() {
    let hostile_role = format!("arn:aws:iam::123456789012:role/{HOSTILE}");
    let text = role_mappings(serde_json::json!([
        {"Role": hostile_role, "IdentifierType": "User", "Identifiers": ["u"]},
        {"Role": format!("arn:{HOSTILE}:iam::123456789012:role/r"), "IdentifierType": "User", "Identifiers": ["u"]},
        {"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": HOSTILE, "Identifiers": ["u"]},
        mapping("Prefix", &[format!("s3://b/{HOSTILE}")]),
        mapping("User", &[format!("u{HOSTILE}")]),
        {"Role": "arn:aws:iam::123456789012:role/r", "IdentifierType": "User", "Identifiers": ["u"], HOSTILE: 1},
    ]));
    // The library: the rendered diagnostics, the error's one-line form, and every error type it quotes.
    let diagnostics = SecurityConfiguration::from_json(&text).expect_err("invalid");
    let codes: Vec<&str> = diagnostics.iter().map(|d| d.code().as_str()).collect();
    assert_eq!(
        codes,
        [
            "invalid-role-arn",
            "invalid-role-arn",
            "unknown-identifier-type",
            "control-character",
            "control-character",
            "unknown-key"
        ]
    );
    let rendered = diagnostics.render(&format!("config-{HOSTILE}.json"));
    assert_shown_escaped(&rendered, &[HOSTILE_SHOWN, &format!("config-{HOSTILE_SHOWN}.json")], "render");
    for block in rendered.split("\n\n").filter(|b| !b.is_empty()) {
        assert!(block.contains(HOSTILE_SHOWN), "every diagnostic quotes the input escaped:\n{block}");
    }
    assert_shown_escaped(&diagnostics.to_string(), &[HOSTILE_SHOWN], "Display of Diagnostics");
    let error = emrfs_rolemap::RoleArn::parse(&hostile_role).expect_err("invalid");
    assert_shown_escaped(&error.to_string(), &[r"\u{1b}"], "Display of RoleArnError");
    let error = emrfs_rolemap::RoleArn::parse(&format!("arn:{HOSTILE}:iam::1:role/r")).expect_err("invalid");
    assert_shown_escaped(&error.to_string(), &[HOSTILE_SHOWN], "Display of RoleArnError");

    // The binary: `check` in text, with the file named after the input too.
    let dir = std::env::temp_dir().join(format!("emrfs-rolemap-escapes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let config = dir.join(format!("config-{HOSTILE}.json"));
    std::fs::write(&config, &text).expect("writable");
    let config = config.to_str().expect("utf-8 path");
    let out = binary(&["check", "--config", config]);
    assert_eq!(assert_clean_exit(&out, "check"), 1);
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    assert_shown_escaped(&stdout, &[HOSTILE_SHOWN, &format!("config-{HOSTILE_SHOWN}.json:")], "check");
    let out = binary(&["resolve", "--config", config, "--user", "u"]);
    assert_eq!(assert_clean_exit(&out, "resolve with an invalid configuration"), 2);
    assert_shown_escaped(&String::from_utf8_lossy(&out.stderr), &[HOSTILE_SHOWN], "an unusable configuration");

    // Requests and cases, through a valid configuration whose identifiers hold what identifiers may hold.
    let valid = dir.join("valid.json");
    std::fs::write(
        &valid,
        role_mappings(serde_json::json!([
            mapping("User", &[format!("u{BIDI}")]),
            mapping("Prefix", &[format!("s3://b/k{BIDI}/")]),
        ])),
    )
    .expect("writable");
    let valid = valid.to_str().expect("utf-8 path");
    let user = format!("x{HOSTILE}");
    let group = format!("g{HOSTILE}");
    let path = format!("s3://b/{HOSTILE}");
    let request = ["--user", &user, "--group", &group, "--path", &path];
    let text_of = |args: &[&str], status: i32| {
        let out = binary(args);
        assert_eq!(assert_clean_exit(&out, &format!("{args:?}")), status, "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    let decided = text_of(&["resolve", "--config", valid, "--user", &format!("u{BIDI}")], 0);
    assert_shown_escaped(&decided, &[&format!("`u{BIDI_SHOWN}`")], "resolve");
    let explained = text_of(&[&["explain", "--config", valid][..], &request].concat(), 0);
    assert_shown_escaped(&explained, &[&format!("`x{HOSTILE_SHOWN}`"), &format!("`{HOSTILE_SHOWN}`")], "explain");
    let bad_path = format!("hdfs://{HOSTILE}");
    for command in ["resolve", "explain"] {
        let refused = text_of(&[command, "--config", valid, "--path", &bad_path], 2);
        assert_shown_escaped(&refused, &[&format!("`hdfs://{HOSTILE_SHOWN}`")], command);
    }
    let fallback = text_of(&["resolve", "--config", valid, "--fallback-role", &hostile_role], 2);
    assert_shown_escaped(&fallback, &[HOSTILE_SHOWN], "--fallback-role");
    // clap refuses the value and quotes it (without the colour sequence and the controls it strips).
    let refused = text_of(&["resolve", "--config", valid, "--format", HOSTILE], 2);
    assert_shown_escaped(&refused, &[BIDI_SHOWN], "an invalid --format");

    // `diff`, in text and Markdown: the identifiers escaped, and a `|` kept inside its table cell.
    let changed = dir.join("changed.json");
    let moved = |identifiers: &[String]| serde_json::json!({"Role": "arn:aws:iam::123456789012:role/moved", "IdentifierType": "User", "Identifiers": identifiers});
    std::fs::write(
        &changed,
        role_mappings(serde_json::json!([
            moved(&[format!("u{BIDI}"), "a|b".to_owned()]),
            mapping("Prefix", &[format!("s3://b/k{BIDI}/")]),
        ])),
    )
    .expect("writable");
    let changed = changed.to_str().expect("utf-8 path");
    let diffed = text_of(&["diff", "--old", valid, "--new", changed], 1);
    assert_shown_escaped(&diffed, &[&format!("user `u{BIDI_SHOWN}`"), "user `a|b`"], "diff");
    let markdown = text_of(&["diff", "--old", valid, "--new", changed, "--format", "markdown"], 1);
    assert_shown_escaped(&markdown, &[&format!("user `u{BIDI_SHOWN}`"), r"user `a\|b`"], "diff --format markdown");
    for row in markdown.lines().filter(|l| l.starts_with("| ")) {
        assert_eq!(row.matches(" | ").count(), 4, "five cells, whatever the input holds: {row}");
    }

    let cases = dir.join("cases.json");
    let expect_hostile = serde_json::json!({"identifier": format!("i{HOSTILE}")});
    std::fs::write(
        &cases,
        serde_json::json!({"cases": [
            {"name": HOSTILE, "user": user, "groups": [group], "path": path, "expect": expect_hostile},
            {"name": "bad path", "path": bad_path, "expect": {}},
        ]})
        .to_string(),
    )
    .expect("writable");
    let tested = text_of(&["test", "--config", valid, "--cases", cases.to_str().expect("utf-8")], 1);
    assert_shown_escaped(
        &tested,
        &[&format!("FAIL  {HOSTILE_SHOWN}\n"), &format!("`i{HOSTILE_SHOWN}`"), &format!("`x{HOSTILE_SHOWN}`")],
        "test",
    );
    assert!(tested.contains(&format!("`hdfs://{HOSTILE_SHOWN}`")), "{tested}");
    std::fs::write(&cases, format!("{{\"cases\": [], {}: 1}}", quoted(HOSTILE))).expect("writable");
    let refused = text_of(&["test", "--config", valid, "--cases", cases.to_str().expect("utf-8")], 2);
    assert_shown_escaped(&refused, &[HOSTILE_SHOWN], "an invalid cases file");
    std::fs::remove_dir_all(&dir).expect("removable");
}

/// A document whose diagnostic of `code` quotes input, with the options it needs and the escaped form
/// the rendered diagnostic must show; `None` for codes whose text quotes no input. The match has no
/// catch-all arm: a new code does not compile until it is listed here.
fn quoting(code: emrfs_rolemap::Code) -> Option<(String, bool, String)> {
    use emrfs_rolemap::Code::*;
    let hostile = |text: String| Some((text, false, HOSTILE_SHOWN.to_owned()));
    let bidi = |text: String| Some((text, false, BIDI_SHOWN.to_owned()));
    let user = |identifiers: &[String]| role_mappings(serde_json::json!([mapping("User", identifiers)]));
    let prefix = |identifiers: &[String]| role_mappings(serde_json::json!([mapping("Prefix", identifiers)]));
    let role = "arn:aws:iam::123456789012:role/r";
    match code {
        InvalidUtf8
        | DocumentTooLarge
        | UnrecognizedDocument
        | EmptyRoleMappings
        | WrongType
        | EmptyIdentifiers
        | EmptyIdentifier
        | UnreachableMapping
        | MissingKey
        | InstanceProfileMismatch => None,
        JsonSyntax => hostile(format!("{{\"RoleMappings\": {HOSTILE}}}")),
        DuplicateKey => hostile(format!(
            "{{\"RoleMappings\": [{{\"Role\": \"{role}\", \"IdentifierType\": \"User\", \"Identifiers\": [\"u\"], {k}: 1, {k}: 2}}]}}",
            k = quoted(HOSTILE)
        )),
        MissingRoleMappings => {
            Some((serde_json::json!({"RoleMapping\u{1b}": []}).to_string(), false, r"`RoleMapping\u{1b}`".to_owned()))
        }
        UnknownKey => hostile(role_mappings(
            serde_json::json!([{"Role": role, "IdentifierType": "User", "Identifiers": ["u"], HOSTILE: 1}]),
        )),

        InvalidRoleArn => hostile(role_mappings(
            serde_json::json!([{"Role": format!("{role}{HOSTILE}"), "IdentifierType": "User", "Identifiers": ["u"]}]),
        )),
        UnknownIdentifierType => {
            hostile(role_mappings(serde_json::json!([{"Role": role, "IdentifierType": HOSTILE, "Identifiers": ["u"]}])))
        }
        PaddedIdentifier => hostile(user(&[format!(" {HOSTILE}")])),
        ControlCharacter => hostile(user(&[format!("u{HOSTILE}")])),
        InvalidPrefix => bidi(prefix(&[format!("hdfs://b/{BIDI}")])),
        InvalidGlob => Some((user(&[format!("u[{BIDI}")]), true, BIDI_SHOWN.to_owned())),
        ShadowedIdentifier => bidi(role_mappings(serde_json::json!([
            mapping("User", &[format!("u{BIDI}")]),
            mapping("User", &[format!("u{BIDI}"), "v".to_owned()]),
        ]))),
        DuplicateIdentifier => bidi(user(&[format!("u{BIDI}"), format!("u{BIDI}")])),
        RedundantIdentifier => bidi(prefix(&["s3://b/".to_owned(), format!("s3://b/x{BIDI}/")])),
        PartiallyShadowedMapping => bidi(role_mappings(serde_json::json!([
            mapping("Prefix", &[format!("s3://b/x{BIDI}/")]),
            mapping("Group", &["g".to_owned()]),
        ]))),
        PrefixBoundary => bidi(prefix(&[format!("s3://b/x{BIDI}")])),
        InvalidBucketName => bidi(prefix(&[format!("s3://b{BIDI}/x/")])),
        LiteralGlobCharacters => bidi(user(&[format!("u*{BIDI}")])),
        SuspiciousCharacters => bidi(user(&[format!("u{BIDI}")])),
        KerberosPrincipal => bidi(user(&[format!("u{BIDI}@EXAMPLE.COM")])),
    }
}

#[test]
fn every_code_that_quotes_input_shows_it_escaped() {
    // Every code (`Code::ALL`); `quoting` fails to compile when one is missing there.
    let mut quoted_codes = 0;
    for code in emrfs_rolemap::Code::ALL {
        let Some((text, globs, shown)) = quoting(code) else { continue };
        quoted_codes += 1;
        let checked = check(text.as_bytes(), &ResolverOptions::new().with_globs(globs));
        let rendered = checked.diagnostics.render("config.json");
        let header = format!("[{code}]: ");
        let block = rendered
            .split("\n\n")
            .find(|b| b.contains(&header))
            .unwrap_or_else(|| panic!("{code}: no such diagnostic for {text:?} in\n{rendered}"));
        assert_shown_escaped(block, &[&shown], code.as_str());
        assert_shown_escaped(&rendered, &[], code.as_str());
        assert_shown_escaped(&checked.diagnostics.to_string(), &[], code.as_str());
    }
    assert_eq!(quoted_codes, 19);
}

// ---- input without bounds -----------------------------------------------------------------------

#[test]
fn rendering_a_minified_100_000_mapping_document_takes_time_in_proportion_to_its_diagnostics() {
    // One line of about 10 MB: mappings 0 to 98,999 each map one user; the last 1,000 each repeat a user
    // of the first 1,000, so each is shadowed by a place some 9 MB before it on the same line.
    let mut mappings: Vec<serde_json::Value> = (0..99_000).map(|i| mapping("User", &[format!("u{i}")])).collect();
    mappings.extend((0..1_000).map(|i| mapping("User", &[format!("u{i}"), format!("v{i}")])));
    let mappings = serde_json::Value::Array(mappings);
    let text = role_mappings(mappings.clone());
    assert!(text.len() > 9_000_000 && !text.contains('\n'));
    // The baseline, in the same run: the same document pretty-printed, with the same diagnostics on
    // short lines.
    let pretty = serde_json::to_string_pretty(&serde_json::json!({ "RoleMappings": mappings })).expect("JSON");
    let render = |text: &str| {
        let checked = check(text.as_bytes(), &ResolverOptions::default());
        assert_eq!(checked.diagnostics.count(emrfs_rolemap::Severity::Warning), 1_000);
        let started = std::time::Instant::now();
        let rendered = checked.diagnostics.render("minified.json");
        (rendered, started.elapsed())
    };
    let (_, short_lines) = render(&pretty);
    let (rendered, one_line) = render(&text);
    // Reading the line for each diagnostic would be 1,000 × 10 MB: hundreds of times the baseline.
    assert!(
        one_line < short_lines * 3 + std::time::Duration::from_millis(200),
        "rendering took {one_line:?} on one line, {short_lines:?} on short lines"
    );
    assert_eq!(rendered.matches("warning[shadowed-identifier]").count(), 1_000);
    assert!(rendered.lines().all(|l| l.chars().count() < 200), "every source line is clipped");
    let first = rendered.split("\n\n").next().unwrap_or_default();
    let column = text.find(r#"["u0","v0"]"#).map_or(0, |at| at + 2);
    assert!(first.contains(&format!("--> minified.json:1:{column}\n")), "{first}");
    assert!(first.contains("--> minified.json:1:") && first.contains("comes first"), "the related place too:\n{first}");
}

/// The peak resident memory (`VmHWM`) of process `pid`, in bytes.
#[cfg(target_os = "linux")]
fn peak_memory(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process runs");
    let kilobytes = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("a VmHWM line");
    kilobytes * 1024
}

#[cfg(target_os = "linux")]
#[test]
fn an_endless_request_line_is_an_error_line_read_in_bounded_memory() {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cli::command(&["resolve", "--config", "examples/configs/aws-docs-example.json", "--requests", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let pid = child.id();
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        // 200 MB without a line break: once written, all but a pipe's worth of it has been read.
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..200 {
            stdin.write_all(&chunk).expect("the batch reads on");
        }
        stdin.write_all(b"\n").expect("the batch reads on");
        let peak = peak_memory(pid);
        stdin.write_all(b"{\"user\": \"user1\"}\n").expect("the batch reads on");
        peak
    });
    let out = child.wait_with_output().expect("the batch finishes");
    let peak = writer.join().expect("the writer finishes");
    assert!(peak < 100 << 20, "the batch held {} MB to read a 200 MB line", peak >> 20);
    assert_eq!(assert_clean_exit(&out, "an endless line"), 1);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON lines"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["error"]["line"], 1);
    let message = lines[0]["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("the line is over 1 MiB (1048576 bytes)"), "{message}");
    assert_eq!(lines[1]["mapping_index"], 0, "the batch goes on with the next line");
}

#[test]
fn a_request_line_over_one_mebibyte_makes_bench_input_unusable() {
    let file = std::env::temp_dir().join(format!("emrfs-rolemap-long-line-{}.jsonl", std::process::id()));
    let long = format!("{{\"user\": \"{}\"}}", "u".repeat(1 << 20));
    std::fs::write(&file, format!("{{\"user\": \"user1\"}}\n{long}\n")).expect("writable");
    let config = "examples/configs/aws-docs-example.json";
    let out = binary(&["bench", "--config", config, "--requests", file.to_str().expect("utf-8"), "--seconds", "0"]);
    assert_eq!(assert_clean_exit(&out, "bench"), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 2: the line is over 1 MiB (1048576 bytes)"), "{stderr}");
    std::fs::remove_file(&file).expect("removable");
}

#[test]
fn a_100_megabyte_cases_file_is_refused_without_being_read_whole() {
    use std::io::Write;
    use std::process::Stdio;
    let config = "examples/configs/aws-docs-example.json";
    let mut child = cli::command(&["test", "--config", config, "--cases", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || {
        stdin.write_all(b"{\"cases\": [], \"padding\": \"")?;
        let chunk = vec![b'x'; 1 << 20];
        (0..100).try_for_each(|_| stdin.write_all(&chunk))
    });
    let out = child.wait_with_output().expect("the binary finishes");
    let written = writer.join().expect("the writer finishes");
    assert_eq!(assert_clean_exit(&out, "test --cases"), 2);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("the cases file `-` is larger than the 64 MiB accepted"), "{stderr}");
    assert_eq!(
        written.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::BrokenPipe),
        "the binary stops reading at the limit and exits"
    );
}
