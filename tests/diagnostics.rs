//! Diagnostics: every error kind the validator reports, with its code, severity, JSON pointer, line and
//! column, and help that names the fix; several errors at once; the describe-output form; rendering.
//!
//! The documents are multi-line raw strings written from the first column, so that the lines and
//! columns asserted here are the ones an editor shows.

use emrfs_rolemap::{Code, Diagnostic, ResolverOptions, SecurityConfiguration, Severity, check};

/// Checks `bytes`, which must be invalid, and returns its diagnostics after checking the house style
/// of each: a lowercase message without a trailing period, and non-empty help.
#[track_caller]
fn diagnose(bytes: &[u8], options: &ResolverOptions) -> Vec<Diagnostic> {
    let checked = check(bytes, options);
    assert!(checked.config.is_none(), "an invalid document must yield no configuration");
    assert!(checked.diagnostics.error_count() > 0, "an invalid document must have errors");
    let all: Vec<Diagnostic> = checked.diagnostics.iter().cloned().collect();
    for d in &all {
        assert!(!d.message().is_empty(), "empty message: {d:#?}");
        assert!(!d.message().ends_with('.'), "message ends with a period: {d:#?}");
        assert!(!d.message().starts_with(|c: char| c.is_ascii_uppercase()), "message is capitalised: {d:#?}");
        assert!(!d.help().trim().is_empty(), "no help: {d:#?}");
    }
    all
}

/// The diagnostics of `text` with the default options.
#[track_caller]
fn errors(text: &str) -> Vec<Diagnostic> {
    diagnose(text.as_bytes(), &ResolverOptions::default())
}

/// The one diagnostic of `text`.
#[track_caller]
fn only(text: &str) -> Diagnostic {
    let mut all = errors(text);
    assert_eq!(all.len(), 1, "expected exactly one diagnostic, got {all:#?}");
    all.remove(0)
}

/// Asserts code, severity (error), pointer, line and column of a diagnostic of the document itself.
#[track_caller]
fn assert_at(d: &Diagnostic, code: Code, pointer: &str, line: u32, column: u32) {
    assert_eq!(
        (
            d.code(),
            d.severity(),
            d.pointer(),
            d.location().map_or(0, |at| at.line),
            d.location().map_or(0, |at| at.column),
            d.embedded_in()
        ),
        (code, Severity::Error, pointer, line, column, None),
        "{d:#?}"
    );
}

/// Asserts that the message and the help contain the given fragments.
#[track_caller]
fn assert_says(d: &Diagnostic, message: &[&str], help: &[&str]) {
    for fragment in message {
        assert!(d.message().contains(fragment), "message {:?} lacks {fragment:?}", d.message());
    }
    for fragment in help {
        assert!(d.help().contains(fragment), "help {:?} lacks {fragment:?}", d.help());
    }
}

/// `(code, pointer)` of each diagnostic, in order.
fn codes_and_pointers(all: &[Diagnostic]) -> Vec<(&'static str, &str)> {
    all.iter().map(|d| (d.code().as_str(), d.pointer())).collect()
}

/// A valid mapping to wrap around the error under test.
const ROLE: &str = "arn:aws:iam::123456789012:role/analysts";

// ---- invalid-utf8 -------------------------------------------------------------------------------

#[test]
fn invalid_utf8_points_at_the_first_bad_byte() {
    // `caf\xe9` is "café" saved as Latin-1.
    let bytes = b"{\n  \"RoleMappings\": [\"caf\xe9\"]\n}";
    let all = diagnose(bytes, &ResolverOptions::default());
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_at(&all[0], Code::InvalidUtf8, "", 2, 24);
    assert_says(&all[0], &["not valid UTF-8"], &["UTF-8"]);
}

// ---- json-syntax --------------------------------------------------------------------------------

#[test]
fn json_syntax_truncated_inside_a_string() {
    let d = only(
        r#"{
  "RoleMappings": [
    {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Gro"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 3, 79);
    assert_says(&d, &["unterminated string"], &["truncated"]);
}

#[test]
fn json_syntax_truncated_after_a_value() {
    let d = only(
        r#"{
  "RoleMappings": [
    {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts"]}
"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 4, 1);
    assert_says(&d, &["unexpected end of input", "`]`"], &["truncated", "closed"]);
}

#[test]
fn json_syntax_trailing_comma_in_an_array() {
    let d = only(
        r#"{
  "RoleMappings": [
    {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice",]}
  ]
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 3, 106);
    assert_says(&d, &["trailing comma before `]`"], &["remove this one"]);
}

#[test]
fn json_syntax_trailing_comma_in_an_object() {
    let d = only(
        r#"{
  "RoleMappings": [
    {
      "Role": "arn:aws:iam::123456789012:role/analysts",
      "IdentifierType": "User",
      "Identifiers": ["alice"],
    }
  ]
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 6, 31);
    assert_says(&d, &["trailing comma before `}`"], &["remove this one"]);
}

#[test]
fn json_syntax_line_comment() {
    let d = only(
        r#"{
  // the analysts' mappings
  "RoleMappings": []
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 2, 3);
    assert_says(&d, &["`/`", "no comments"], &["comments"]);
}

#[test]
fn json_syntax_hash_comment_after_a_member() {
    let d = only(
        r#"{
  "RoleMappings": [] # none yet
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 2, 22);
    assert_says(&d, &["`#`", "no comments"], &["comments"]);
}

#[test]
fn json_syntax_single_quoted_key() {
    let d = only(
        r#"{
  "RoleMappings": [
    {'Role': "arn:aws:iam::123456789012:role/analysts"}
  ]
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 3, 6);
    assert_says(&d, &["`'`", "double quotes"], &["single quotes"]);
}

#[test]
fn json_syntax_single_quoted_value() {
    let d = only(
        r#"{
  "RoleMappings": [
    {"Role": 'arn:aws:iam::123456789012:role/analysts'}
  ]
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 3, 14);
    assert_says(&d, &["`'`", "double quotes", "a JSON value"], &["single quotes"]);
}

#[test]
fn json_syntax_empty_document() {
    let d = only("\n  \n");
    assert_at(&d, Code::JsonSyntax, "", 3, 1);
    assert_says(&d, &["empty"], &["JSON object"]);
}

#[test]
fn json_syntax_trailing_characters() {
    let d = only(
        r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]}
]}
}"#,
    );
    assert_at(&d, Code::JsonSyntax, "", 4, 1);
    assert_says(&d, &["trailing characters"], &["exactly one JSON value"]);
}

// ---- duplicate-key ------------------------------------------------------------------------------

#[test]
fn duplicate_key_points_at_the_repeated_key() {
    let d = only(
        r#"{
  "RoleMappings": [
    {
      "Role": "arn:aws:iam::123456789012:role/analysts",
      "IdentifierType": "User",
      "Identifiers": ["alice"],
      "Role": "arn:aws:iam::123456789012:role/admins"
    }
  ]
}"#,
    );
    assert_at(&d, Code::DuplicateKey, "/RoleMappings/0/Role", 7, 7);
    assert_says(&d, &["`Role`", "more than once"], &["keep exactly one"]);
}

#[test]
fn duplicate_key_at_the_top_level() {
    let d = only(
        r#"{
  "RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["a"]}],
  "RoleMappings": [{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "User", "Identifiers": ["b"]}]
}"#,
    );
    assert_at(&d, Code::DuplicateKey, "/RoleMappings", 3, 3);
}

// ---- unrecognized-document ----------------------------------------------------------------------

#[test]
fn unrecognized_document_top_level_array() {
    let d = only(
        r#"
  [
    {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]}
  ]"#,
    );
    assert_at(&d, Code::UnrecognizedDocument, "", 2, 3);
    assert_says(
        &d,
        &["an array", "not a JSON object"],
        &["`{\"RoleMappings\": [...]}`", "describe-security-configuration"],
    );
}

#[test]
fn unrecognized_document_top_level_string() {
    let d = only(r#""arn:aws:iam::123456789012:role/analysts""#);
    assert_at(&d, Code::UnrecognizedDocument, "", 1, 1);
    assert_says(&d, &["a string"], &["RoleMappings"]);
}

#[test]
fn a_byte_order_mark_is_not_a_column() {
    let d = only("\u{feff}[]");
    assert_at(&d, Code::UnrecognizedDocument, "", 1, 1);
}

// ---- missing-role-mappings ----------------------------------------------------------------------

#[test]
fn missing_role_mappings_in_an_empty_object() {
    let d = only("{\n}");
    assert_at(&d, Code::MissingRoleMappings, "", 1, 1);
    assert_says(
        &d,
        &["no `AuthorizationConfiguration`"],
        &["/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings"],
    );
}

#[test]
fn missing_role_mappings_near_miss_at_the_top_level() {
    let d = only(
        r#"{
  "RoleMapping": [
    {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]}
  ]
}"#,
    );
    assert_at(&d, Code::MissingRoleMappings, "/RoleMapping", 2, 3);
    assert_says(&d, &["no `RoleMappings`"], &["found `RoleMapping`", "did you mean `RoleMappings`?"]);
}

#[test]
fn missing_role_mappings_near_miss_of_emrfs_configuration() {
    let d = only(
        r#"{
  "EmrFSConfiguration": {
    "RoleMappings": []
  }
}"#,
    );
    assert_at(&d, Code::MissingRoleMappings, "/EmrFSConfiguration", 2, 3);
    assert_says(&d, &["no `EmrFsConfiguration`"], &["did you mean `EmrFsConfiguration`?"]);
}

#[test]
fn missing_role_mappings_near_miss_inside_emrfs_configuration() {
    let d = only(
        r#"{
  "AuthorizationConfiguration": {
    "EmrFsConfiguration": {
      "roleMappings": []
    }
  }
}"#,
    );
    assert_at(&d, Code::MissingRoleMappings, "/AuthorizationConfiguration/EmrFsConfiguration/roleMappings", 4, 7);
    assert_says(
        &d,
        &["`/AuthorizationConfiguration/EmrFsConfiguration` has no `RoleMappings`"],
        &["found `roleMappings`", "did you mean `RoleMappings`?"],
    );
}

#[test]
fn missing_role_mappings_when_only_other_authorization_is_configured() {
    let d = only(
        r#"{
  "EncryptionConfiguration": {"EnableAtRestEncryption": false},
  "AuthorizationConfiguration": {
    "IAMConfiguration": {"EnableApplicationScopedIAMRole": true}
  }
}"#,
    );
    assert_at(&d, Code::MissingRoleMappings, "/AuthorizationConfiguration", 3, 33);
    assert_says(
        &d,
        &["`/AuthorizationConfiguration` has no `EmrFsConfiguration`"],
        &["/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings"],
    );
}

// ---- empty-role-mappings ------------------------------------------------------------------------

#[test]
fn empty_role_mappings() {
    let d = only(
        r#"{
  "AuthorizationConfiguration": {
    "EmrFsConfiguration": {
      "RoleMappings": [ ]
    }
  }
}"#,
    );
    assert_at(&d, Code::EmptyRoleMappings, "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings", 4, 23);
    assert_says(&d, &["`RoleMappings` is empty"], &["add at least one mapping"]);
}

// ---- wrong-type ---------------------------------------------------------------------------------

#[test]
fn wrong_type_role_as_a_number() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": 123456789012,
    "IdentifierType": "User",
    "Identifiers": ["alice"]
  }
]}"#,
    );
    assert_at(&d, Code::WrongType, "/RoleMappings/0/Role", 3, 13);
    assert_says(
        &d,
        &["a string holding an IAM role ARN", "found a number"],
        &["`/RoleMappings/0/Role` must be a string"],
    );
}

#[test]
fn wrong_type_identifiers_as_a_string() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "User",
    "Identifiers": "alice"
  }
]}"#,
    );
    assert_at(&d, Code::WrongType, "/RoleMappings/0/Identifiers", 5, 20);
    assert_says(&d, &["an array of identifier strings", "found a string"], &["must be an array"]);
}

#[test]
fn wrong_type_identifier_type_as_an_array() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": ["User"],
    "Identifiers": ["alice"]
  }
]}"#,
    );
    assert_at(&d, Code::WrongType, "/RoleMappings/0/IdentifierType", 4, 23);
    assert_says(&d, &["`User`, `Group` or `Prefix`", "found an array"], &["must be one of the strings"]);
}

#[test]
fn wrong_type_identifier_as_a_number() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "User",
    "Identifiers": ["alice", 42]
  }
]}"#,
    );
    assert_at(&d, Code::WrongType, "/RoleMappings/0/Identifiers/1", 5, 30);
    assert_says(&d, &["expected a string", "found a number"], &["`/RoleMappings/0/Identifiers/1` must be a string"]);
}

#[test]
fn wrong_type_mapping_not_an_object() {
    let d = only(
        r#"{"RoleMappings": [
  "arn:aws:iam::123456789012:role/analysts"
]}"#,
    );
    assert_at(&d, Code::WrongType, "/RoleMappings/0", 2, 3);
    assert_says(&d, &["a role mapping object", "found a string"], &["must be a role mapping object"]);
}

#[test]
fn wrong_type_role_mappings_not_an_array() {
    let d = only(
        r#"{
  "EmrFsConfiguration": {
    "RoleMappings": {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]}
  }
}"#,
    );
    assert_at(&d, Code::WrongType, "/EmrFsConfiguration/RoleMappings", 3, 21);
    assert_says(&d, &["an array of role mappings", "found an object"], &["must be an array"]);
}

#[test]
fn wrong_type_on_the_way_to_role_mappings() {
    let d = only(
        r#"{
  "AuthorizationConfiguration": {
    "EmrFsConfiguration": null
  }
}"#,
    );
    assert_at(&d, Code::WrongType, "/AuthorizationConfiguration/EmrFsConfiguration", 3, 27);
    assert_says(&d, &["expected an object", "found null"], &["must be an object"]);
}

// ---- unknown-key and missing-key ----------------------------------------------------------------

#[test]
fn unknown_key_identifier_suggests_identifiers() {
    let all = errors(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "User",
    "Identifier": ["alice"]
  }
]}"#,
    );
    // One mistake, one diagnostic: the misspelled key, not also the key it misses.
    assert_eq!(codes_and_pointers(&all), [("unknown-key", "/RoleMappings/0/Identifier")]);
    assert_at(&all[0], Code::UnknownKey, "/RoleMappings/0/Identifier", 5, 5);
    assert_says(&all[0], &["unknown key `Identifier`"], &["did you mean `Identifiers`?"]);
}

#[test]
fn unknown_key_without_a_near_miss() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "User",
    "Identifiers": ["alice"],
    "Comment": "the analysts"
  }
]}"#,
    );
    assert_at(&d, Code::UnknownKey, "/RoleMappings/0/Comment", 6, 5);
    assert_says(&d, &["unknown key `Comment`"], &["`Role`, `IdentifierType` and `Identifiers`", "remove this one"]);
}

#[test]
fn missing_key_points_at_the_mapping() {
    let d = only(
        r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "User", "Identifiers": ["alice"]},
    {
      "IdentifierType": "Group",
      "Identifiers": ["analysts"]
    }
]}"#,
    );
    assert_at(&d, Code::MissingKey, "/RoleMappings/1", 3, 5);
    assert_says(&d, &["no `Role`"], &["add `Role`"]);
}

// ---- invalid-role-arn ---------------------------------------------------------------------------

#[test]
fn invalid_role_arn_names_the_wrong_part() {
    let cases = [
        ("arn:aws-xx:iam::123456789012:role/analysts", "unknown partition `aws-xx`", "`aws-us-gov`"),
        ("arn:aws:iam::12345678901:role/analysts", "the account `12345678901` is not 12 digits", "exactly 12 digits"),
        ("arn:aws:iam::12345678901a:role/analysts", "is not 12 digits", "exactly 12 digits"),
        (
            "arn:aws:sts::123456789012:assumed-role/analysts/s",
            "the service is `sts`, not `iam`",
            "the ARN of the role itself",
        ),
        ("arn:aws:s3:::analysts", "the service is `s3`, not `iam`", "arn:aws:iam::123456789012:role/NAME"),
        (
            "arn:aws:iam:us-east-1:123456789012:role/analysts",
            "IAM ARNs have no region",
            "arn:aws:iam::123456789012:role/NAME",
        ),
        ("arn:aws:iam::123456789012:user/analysts", "the resource type is `user`, not `role`", "EMRFS assumes roles"),
        ("arn:aws:iam::123456789012:role/data analysts", "contains ` `", "`+=,.@_-`"),
        ("arn:aws:iam::123456789012:role/", "the role name has 0 characters", "1 to 64 characters"),
        ("arn:aws:iam::123456789012:role/emrfs/te*m/analysts", "the role path contains `*`", "path segments"),
        ("arn:aws:iam::123456789012:role/emrfs//analysts", "the role path has an empty segment", "path segments"),
        ("analysts", "must start with `arn:`", "arn:aws:iam::123456789012:role/NAME"),
        ("arn:aws:iam::123456789012", "too few", "arn:aws:iam::123456789012:role/NAME"),
    ];
    for (arn, message, help) in cases {
        let text = format!(
            r#"{{"RoleMappings": [
  {{
    "Role": "{arn}",
    "IdentifierType": "User",
    "Identifiers": ["alice"]
  }}
]}}"#
        );
        let d = only(&text);
        assert_at(&d, Code::InvalidRoleArn, "/RoleMappings/0/Role", 3, 13);
        assert_says(&d, &[&format!("`{arn}` is not an IAM role ARN"), message], &[help]);
    }
}

#[test]
fn a_long_role_name_is_invalid() {
    let name = "n".repeat(65);
    let text = format!(
        r#"{{"RoleMappings": [{{"Role": "arn:aws:iam::123456789012:role/{name}", "IdentifierType": "User", "Identifiers": ["alice"]}}]}}"#
    );
    let d = only(&text);
    assert_at(&d, Code::InvalidRoleArn, "/RoleMappings/0/Role", 1, 28);
    assert_says(&d, &["65 characters"], &["1 to 64 characters"]);
}

// ---- unknown-identifier-type --------------------------------------------------------------------

#[test]
fn unknown_identifier_type_near_misses_name_the_right_spelling() {
    for (written, right) in [("user", "User"), ("Users", "User"), ("GROUP", "Group"), ("Prefixes", "Prefix")] {
        let text = format!(
            r#"{{"RoleMappings": [
  {{
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "{written}",
    "Identifiers": ["alice"]
  }}
]}}"#
        );
        let d = only(&text);
        assert_at(&d, Code::UnknownIdentifierType, "/RoleMappings/0/IdentifierType", 4, 23);
        assert_says(&d, &[&format!("unknown identifier type `{written}`")], &[&format!("did you mean `{right}`?")]);
    }
}

#[test]
fn unknown_identifier_type_without_a_near_miss_lists_the_types() {
    let d = only(&format!(
        r#"{{"RoleMappings": [{{"Role": "{ROLE}", "IdentifierType": "Bucket", "Identifiers": ["b"]}}]}}"#
    ));
    assert_at(&d, Code::UnknownIdentifierType, "/RoleMappings/0/IdentifierType", 1, 89);
    assert_says(&d, &["`Bucket`"], &["`User`, `Group` or `Prefix`"]);
    assert!(!d.help().contains("did you mean"), "{}", d.help());
}

// ---- identifiers --------------------------------------------------------------------------------

#[test]
fn empty_identifiers() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "Group",
    "Identifiers": []
  }
]}"#,
    );
    assert_at(&d, Code::EmptyIdentifiers, "/RoleMappings/0/Identifiers", 5, 20);
    assert_says(&d, &["`Identifiers` is empty"], &["at least one identifier"]);
}

#[test]
fn empty_identifier() {
    let d = only(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "Group",
    "Identifiers": [
      "analysts",
      ""
    ]
  }
]}"#,
    );
    assert_at(&d, Code::EmptyIdentifier, "/RoleMappings/0/Identifiers/1", 7, 7);
    assert_says(&d, &["empty"], &["remove the empty string"]);
}

#[test]
fn padded_identifiers() {
    let all = errors(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "User",
    "Identifiers": ["alice ", "bob", "\tcarol"]
  }
]}"#,
    );
    assert_eq!(
        codes_and_pointers(&all),
        [
            ("padded-identifier", "/RoleMappings/0/Identifiers/0"),
            ("padded-identifier", "/RoleMappings/0/Identifiers/2")
        ]
    );
    assert_at(&all[0], Code::PaddedIdentifier, "/RoleMappings/0/Identifiers/0", 5, 21);
    assert_says(&all[0], &["`alice `", "white space"], &["write `alice`"]);
    assert_at(&all[1], Code::PaddedIdentifier, "/RoleMappings/0/Identifiers/2", 5, 38);
    assert_says(&all[1], &["white space"], &["write `carol`"]);
}

#[test]
fn invalid_prefixes() {
    let all = errors(
        r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "Prefix",
    "Identifiers": [
      "hdfs://namenode/data/",
      "lake/raw/",
      "s3:///raw/",
      "s3://lake/raw/"
    ]
  }
]}"#,
    );
    assert_eq!(
        codes_and_pointers(&all),
        [
            ("invalid-prefix", "/RoleMappings/0/Identifiers/0"),
            ("invalid-prefix", "/RoleMappings/0/Identifiers/1"),
            ("invalid-prefix", "/RoleMappings/0/Identifiers/2"),
        ]
    );
    assert_at(&all[0], Code::InvalidPrefix, "/RoleMappings/0/Identifiers/0", 6, 7);
    assert_says(&all[0], &["`hdfs://namenode/data/`", "unsupported scheme"], &["`s3://bucket/key-prefix`"]);
    assert_at(&all[1], Code::InvalidPrefix, "/RoleMappings/0/Identifiers/1", 7, 7);
    assert_says(&all[1], &["`lake/raw/`", "no `://`"], &["`s3://bucket`"]);
    assert_at(&all[2], Code::InvalidPrefix, "/RoleMappings/0/Identifiers/2", 8, 7);
    assert_says(&all[2], &["`s3:///raw/`", "the bucket is empty"], &["`s3://bucket`"]);
}

// ---- invalid-glob -------------------------------------------------------------------------------

const GLOBS: &str = r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/teams",
    "IdentifierType": "Group",
    "Identifiers": ["team-[ab", "team-*"]
  },
  {
    "Role": "arn:aws:iam::123456789012:role/logs",
    "IdentifierType": "Prefix",
    "Identifiers": ["s3://logs/{app,web"]
  }
]}"#;

#[test]
fn invalid_globs_are_errors_when_globs_are_on() {
    let options = ResolverOptions::new().with_globs(true);
    let all = diagnose(GLOBS.as_bytes(), &options);
    assert_eq!(
        codes_and_pointers(&all),
        [("invalid-glob", "/RoleMappings/0/Identifiers/0"), ("invalid-glob", "/RoleMappings/1/Identifiers/0")]
    );
    assert_at(&all[0], Code::InvalidGlob, "/RoleMappings/0/Identifiers/0", 5, 21);
    assert_says(&all[0], &["`team-[ab`", "not a valid glob", "character class"], &["`[*]`"]);
    assert_at(&all[1], Code::InvalidGlob, "/RoleMappings/1/Identifiers/0", 10, 21);
    assert_says(&all[1], &["`s3://logs/{app,web`", "not a valid glob"], &["`[{]`"]);
}

#[test]
fn glob_characters_are_ordinary_when_globs_are_off() {
    let checked = check(GLOBS.as_bytes(), &ResolverOptions::default());
    assert_eq!(checked.diagnostics.error_count(), 0, "{:#?}", checked.diagnostics);
    let literal: Vec<&str> =
        checked.diagnostics.iter().filter(|d| d.code() == Code::LiteralGlobCharacters).map(|d| d.pointer()).collect();
    let expected = ["/RoleMappings/0/Identifiers/0", "/RoleMappings/0/Identifiers/1", "/RoleMappings/1/Identifiers/0"];
    assert_eq!(literal, expected, "only warned about");
    assert!(checked.config.is_some());
}

// ---- several errors at once ---------------------------------------------------------------------

#[test]
fn every_error_is_reported_at_once_in_source_order() {
    let all = errors(
        r#"{
  "AuthorizationConfiguration": {
    "EmrFsConfiguration": {
      "RoleMappings": [
        {"Role": "arn:aws:iam::123456789012:role/ok", "IdentifierType": "User", "Identifiers": ["alice"]},
        {"Role": 7, "IdentifierType": "Users", "Identifiers": ["bob", " carol"]},
        {"Role": "arn:aws:sts::123456789012:assumed-role/x/y", "IdentifierType": "Prefix", "Identifiers": ["hdfs://nn/x", ""]},
        {"IdentifierType": "Group", "Identifier": ["ops"]},
        "not a mapping",
        {"Role": "arn:aws:iam::123456789012:role/ok", "IdentifierType": "Group", "Identifiers": []}
      ]
    }
  }
}"#,
    );
    let m = "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings";
    let expected = [
        ("wrong-type", format!("{m}/1/Role")),
        ("unknown-identifier-type", format!("{m}/1/IdentifierType")),
        ("padded-identifier", format!("{m}/1/Identifiers/1")),
        ("invalid-role-arn", format!("{m}/2/Role")),
        ("invalid-prefix", format!("{m}/2/Identifiers/0")),
        ("empty-identifier", format!("{m}/2/Identifiers/1")),
        ("missing-key", format!("{m}/3")),
        ("unknown-key", format!("{m}/3/Identifier")),
        ("wrong-type", format!("{m}/4")),
        ("empty-identifiers", format!("{m}/5/Identifiers")),
    ];
    let got: Vec<(&str, String)> = all.iter().map(|d| (d.code().as_str(), d.pointer().to_owned())).collect();
    assert_eq!(got, expected);
    let lines: Vec<u32> = all.iter().map(|d| d.location().map_or(0, |at| at.line)).collect();
    assert_eq!(lines, [6, 6, 6, 7, 7, 7, 8, 8, 9, 10]);
    assert!(all[6].message().contains("`Role`") && all[7].help().contains("did you mean `Identifiers`?"), "{all:#?}");
}

#[test]
fn from_json_fails_with_the_same_diagnostics() {
    let text = r#"{"RoleMappings": [{"Role": "r", "IdentifierType": "user", "Identifiers": []}]}"#;
    let error = SecurityConfiguration::from_json(text).unwrap_err();
    let checked = check(text.as_bytes(), &ResolverOptions::default());
    assert_eq!(error, checked.diagnostics);
    assert_eq!(error.error_count(), 3);
    assert_eq!(
        error.to_string(),
        "`r` is not an IAM role ARN: not an ARN: it must start with `arn:` at 1:28 (`/RoleMappings/0/Role`), and 2 more errors"
    );
}

// ---- the describe-security-configuration form ---------------------------------------------------

#[test]
fn describe_output_reports_positions_inside_the_embedded_document() {
    let text = r#"{
    "Name": "EMRFS_Roles",
    "SecurityConfiguration": "{\n  \"AuthorizationConfiguration\": {\n    \"EmrFsConfiguration\": {\n      \"RoleMappings\": [\n        {\"Role\": \"arn:aws:iam::123456789012:role/ok\", \"IdentifierType\": \"user\", \"Identifiers\": [\"alice\"]}\n      ]\n    }\n  }\n}",
    "CreationDateTime": "2026-11-02T10:15:30.123000+00:00"
}"#;
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    let d = &all[0];
    assert_eq!(
        (
            d.code(),
            d.pointer(),
            d.location().map_or(0, |at| at.line),
            d.location().map_or(0, |at| at.column),
            d.embedded_in()
        ),
        (
            Code::UnknownIdentifierType,
            "/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings/0/IdentifierType",
            5,
            73,
            Some("/SecurityConfiguration")
        )
    );
    assert_says(d, &["`user`"], &["did you mean `User`?"]);
    let rendered = SecurityConfiguration::from_json(text).unwrap_err().render("describe.json");
    assert!(
        rendered.contains("--> describe.json (document embedded in `/SecurityConfiguration`):5:73\n"),
        "{rendered}"
    );
    let (shown, caret) = shown_at(&rendered, "(document embedded in `/SecurityConfiguration`)", 5, 73);
    assert!(shown.contains(r#"{"Role": "arn:aws:iam::123456789012:role/ok""#), "the embedded line is shown: {shown:?}");
    assert!(shown.chars().skip(caret).collect::<String>().starts_with(r#""user""#), "\n{rendered}");
}

#[test]
fn describe_output_reports_syntax_errors_inside_the_embedded_document() {
    let text = r#"{
  "Name": "EMRFS_Roles",
  "SecurityConfiguration": "{\n  \"RoleMappings\": [\n    {\"Role\": 'x'}\n  ]\n}"
}"#;
    let all = errors(text);
    assert_eq!(all.len(), 1, "{all:#?}");
    let d = &all[0];
    assert_eq!(
        (
            d.code(),
            d.pointer(),
            d.location().map_or(0, |at| at.line),
            d.location().map_or(0, |at| at.column),
            d.embedded_in()
        ),
        (Code::JsonSyntax, "", 3, 14, Some("/SecurityConfiguration"))
    );
    assert_says(d, &["the embedded security configuration is not valid JSON", "`'`"], &["single quotes"]);
}

#[test]
fn describe_output_needs_the_full_document() {
    let all = errors(r#"{"Name": "x", "SecurityConfiguration": "{}"}"#);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!((all[0].code(), all[0].embedded_in()), (Code::MissingRoleMappings, Some("/SecurityConfiguration")));
}

#[test]
fn describe_output_errors_outside_the_string_are_not_embedded() {
    let d = only(
        r#"{
  "Name": "EMRFS_Roles",
  "SecurityConfiguration": {"AuthorizationConfiguration": {}}
}"#,
    );
    assert_at(&d, Code::WrongType, "/SecurityConfiguration", 3, 28);
    assert_says(&d, &["a string holding the security configuration as JSON", "found an object"], &["must be a string"]);
}

// ---- rendering ----------------------------------------------------------------------------------

#[test]
fn render_shows_file_line_column_source_and_caret() {
    let text = r#"{"RoleMappings": [
  {
    "Role": "arn:aws:iam::123456789012:role/analysts",
    "IdentifierType": "Users",
    "Identifiers": ["alice"]
  }
]}"#;
    let rendered = SecurityConfiguration::from_json(text).unwrap_err().render("config.json");
    let expected = [
        "error[unknown-identifier-type]: unknown identifier type `Users`",
        "  --> config.json:4:23",
        "  |",
        r#"4 |     "IdentifierType": "Users","#,
        "  |                       ^^^^^^^ /RoleMappings/0/IdentifierType",
        "  |",
        "  = help: did you mean `User`? Identifier types are case-sensitive: `User`, `Group` or `Prefix`",
        "",
    ];
    assert_eq!(rendered.lines().collect::<Vec<_>>(), expected, "\n{rendered}");
}

/// The quoted source line and the underline that `rendered` shows for the diagnostic at `line:column`:
/// the source text after its gutter, the 0-based character index where the underline starts in that
/// text, and the underlined text.
fn shown_at(rendered: &str, file: &str, line: u32, column: u32) -> (String, usize) {
    let (shown, start, _) = underlined_at(rendered, file, line, column);
    (shown, start)
}

fn underlined_at(rendered: &str, file: &str, line: u32, column: u32) -> (String, usize, String) {
    let location = format!("{file}:{line}:{column}\n");
    let at = rendered.find(&location).unwrap_or_else(|| panic!("no `{location}` in\n{rendered}"));
    let mut lines = rendered[at..].lines().skip(2);
    let (source, marks) = (lines.next().expect("a source line"), lines.next().expect("an underline"));
    let gutter = format!("{line} | ");
    let shown = source.strip_prefix(&gutter).unwrap_or_else(|| panic!("{source:?} lacks the gutter {gutter:?}"));
    let mark_gutter = format!("{} | ", " ".repeat(line.to_string().len()));
    let marks = marks.strip_prefix(&mark_gutter).unwrap_or_else(|| panic!("{marks:?} lacks the gutter"));
    let start = marks.chars().take_while(|c| *c == ' ').count();
    let length = marks.chars().skip(start).take_while(|c| *c == '^').count();
    assert!(length > 0, "an underline of `^` after spaces:\n{rendered}");
    (shown.to_owned(), start, shown.chars().skip(start).take(length).collect())
}

#[test]
fn render_puts_the_caret_under_each_error() {
    let text = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/ops", "IdentifierType": "Group", "Identifiers": [""]},
  {"Role": "arn:aws:iam::123456789012:role/é", "IdentifierType": "User", "Identifiers": ["élo "]}
]}"#;
    let diagnostics = SecurityConfiguration::from_json(text).unwrap_err();
    assert_eq!(
        diagnostics
            .iter()
            .map(|d| (d.code().as_str(), d.location().map_or(0, |at| at.line), d.location().map_or(0, |at| at.column)))
            .collect::<Vec<_>>(),
        [("empty-identifier", 2, 93), ("invalid-role-arn", 3, 12), ("padded-identifier", 3, 90)]
    );
    let rendered = diagnostics.render("config.json");
    for d in &diagnostics {
        let (shown, caret) = shown_at(
            &rendered,
            "config.json",
            d.location().map_or(0, |at| at.line),
            d.location().map_or(0, |at| at.column),
        );
        assert_eq!(
            shown,
            text.lines().nth(d.location().map_or(0, |at| at.line) as usize - 1).unwrap(),
            "the whole line is shown"
        );
        assert_eq!(
            caret + 1,
            d.location().map_or(0, |at| at.column) as usize,
            "the caret is at the column:\n{rendered}"
        );
        assert_eq!(shown.chars().nth(caret), Some('"'), "the caret is under the string:\n{rendered}");
        let (_, _, underlined) = underlined_at(
            &rendered,
            "config.json",
            d.location().map_or(0, |at| at.line),
            d.location().map_or(0, |at| at.column),
        );
        assert!(
            underlined.starts_with('"') && underlined.ends_with('"') && underlined.len() > 1,
            "the whole string is underlined: {underlined:?}"
        );
    }
}

#[test]
fn render_clips_long_lines_around_the_caret() {
    let text = r#"{"RoleMappings": [
  {"Role": "arn:aws:iam::123456789012:role/analysts", "IdentifierType": "Group", "Identifiers": ["analysts", "operations", "", "developers"]}
]}"#;
    let d = only(text);
    assert_at(&d, Code::EmptyIdentifier, "/RoleMappings/0/Identifiers/2", 2, 124);
    let rendered = SecurityConfiguration::from_json(text).unwrap_err().render("config.json");
    let (shown, caret) = shown_at(&rendered, "config.json", 2, 124);
    assert!(shown.starts_with('…') && shown.chars().count() <= 102, "clipped to 100 characters: {shown:?}");
    let under: String = shown.chars().skip(caret).take(5).collect();
    assert_eq!(under, r#""", ""#, "the caret is under the empty string:\n{rendered}");
}

#[test]
fn render_shows_control_and_bidi_characters_escaped_with_the_caret_still_under_the_error() {
    // DEL, the C1 control CSI and a right-to-left override raw in a string, and a tab: each is shown
    // escaped, so wider than one column, and the caret after them still points at the empty identifier.
    let text = "{\"RoleMappings\": [{\"Role\": \"arn:aws:iam::123456789012:role/r\", \"IdentifierType\": \"User\",\n\"Identifiers\": [\"a\u{7f}\u{9b}\u{202e}b\",\t\"\"]}]}";
    let diagnostics = SecurityConfiguration::from_json(text).unwrap_err();
    assert_eq!(
        diagnostics
            .iter()
            .map(|d| (d.code().as_str(), d.location().map_or(0, |at| at.line), d.location().map_or(0, |at| at.column)))
            .collect::<Vec<_>>(),
        [("control-character", 2, 17), ("empty-identifier", 2, 26)]
    );
    let rendered = diagnostics.render("config.json");
    for raw in ['\u{7f}', '\u{9b}', '\u{202e}', '\t'] {
        assert!(!rendered.contains(raw), "raw U+{:04X} in\n{rendered}", raw as u32);
    }
    let (shown, caret) = shown_at(&rendered, "config.json", 2, 17);
    assert_eq!(shown, r#""Identifiers": ["a\u{7f}\u{9b}\u{202e}b",\t""]}]}"#);
    assert_eq!(caret, 16, "the caret is under the first identifier:\n{rendered}");
    let (_, caret) = shown_at(&rendered, "config.json", 2, 26);
    assert_eq!(caret, shown.find(r#""""#).unwrap_or_default(), "the caret is under `\"\"`:\n{rendered}");
    assert!(rendered.contains(r"the identifier `a\u{7f}\u{9b}\u{202e}b` contains the control character U+007F"));
}

// ---- valid documents ----------------------------------------------------------------------------

#[test]
fn valid_documents_have_no_diagnostics() {
    let mappings = format!(
        r#"[{{"Role": "{ROLE}", "IdentifierType": "Group", "Identifiers": ["analysts"]}},
           {{"Role": "arn:aws-us-gov:iam::000000000000:role/emrfs/raw+=,.@_-", "IdentifierType": "Prefix", "Identifiers": ["s3a://lake/raw/", "S3://lake"]}}]"#
    );
    let full = format!(
        r#"{{"EncryptionConfiguration": {{"EnableAtRestEncryption": false}},
            "AuthorizationConfiguration": {{"IAMConfiguration": {{}}, "EmrFsConfiguration": {{"RoleMappings": {mappings}}}}}}}"#
    );
    let describe = serde_json::json!({"Name": "n", "SecurityConfiguration": full}).to_string();
    let documents = [
        full.clone(),
        describe,
        format!(r#"{{"EmrFsConfiguration": {{"RoleMappings": {mappings}}}}}"#),
        format!(r#"{{"RoleMappings": {mappings}}}"#),
        format!("\u{feff}{{\"RoleMappings\": {mappings}}}"),
    ];
    for text in &documents {
        for globs in [false, true] {
            let checked = check(text.as_bytes(), &ResolverOptions::new().with_globs(globs));
            assert!(checked.diagnostics.is_empty(), "{text}: {:#?}", checked.diagnostics);
            let config = checked.config.unwrap_or_else(|| panic!("{text}: no configuration"));
            assert_eq!(config.mappings().len(), 2);
            assert_eq!(config.mappings()[1].identifiers()[1].as_str(), "S3://lake");
        }
    }
}
