//! Warnings and notes of `check`: each kind with its code, severity, JSON pointer, line and column, a
//! message that names the other mapping or identifier involved by index and pointer, and help; how
//! they depend on the prefix mode and the glob setting; the describe-output form.
//!
//! Documents are raw strings written from the first column, so that the lines and columns asserted here
//! are the ones an editor shows. Exactness of the shadowing analysis is `tests/lint_exactness.rs`.

use emrfs_rolemap::{Code, Diagnostic, PrefixMatch, ResolverOptions, Severity, check};

/// The warnings and notes of a valid document, after checking the house style of each.
#[track_caller]
fn lints(text: &str, options: &ResolverOptions) -> Vec<Diagnostic> {
    let checked = check(text.as_bytes(), options);
    assert!(checked.config.is_some(), "the document is valid: {}", checked.diagnostics);
    let all: Vec<Diagnostic> = checked.diagnostics.iter().cloned().collect();
    for d in &all {
        assert_ne!(d.severity(), Severity::Error, "{d:#?}");
        assert!(!d.message().ends_with('.') && !d.message().starts_with(|c: char| c.is_ascii_uppercase()), "{d:#?}");
        assert!(!d.help().trim().is_empty(), "no help: {d:#?}");
    }
    all
}

fn default_lints(text: &str) -> Vec<Diagnostic> {
    lints(text, &ResolverOptions::default())
}

/// `(code, severity, pointer, line, column)` of each diagnostic.
fn places(all: &[Diagnostic]) -> Vec<(Code, Severity, &str, u32, u32)> {
    all.iter()
        .map(|d| {
            (
                d.code(),
                d.severity(),
                d.pointer(),
                d.location().map_or(0, |at| at.line),
                d.location().map_or(0, |at| at.column),
            )
        })
        .collect()
}

#[track_caller]
fn says(d: &Diagnostic, message: &[&str], help: &[&str]) {
    for fragment in message {
        assert!(d.message().contains(fragment), "message {:?} lacks {fragment:?}", d.message());
    }
    for fragment in help {
        assert!(d.help().contains(fragment), "help {:?} lacks {fragment:?}", d.help());
    }
}

/// The line and column (in characters, from 1) of the `nth` occurrence (from 0) of `needle` in `text`.
fn position(text: &str, needle: &str, nth: usize) -> (u32, u32) {
    let offset = text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("no {needle:?} #{nth}")).0;
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line as u32, column as u32)
}

const W: Severity = Severity::Warning;
const N: Severity = Severity::Note;

#[test]
fn shadowed_identifiers_name_the_mapping_that_wins() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/etl", "IdentifierType": "User", "Identifiers": ["etl"]},
{"Role": "arn:aws:iam::123456789012:role/lake", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/raw/"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "User", "Identifiers": ["bob", "etl"]},
{"Role": "arn:aws:iam::123456789012:role/c", "IdentifierType": "Prefix", "Identifiers": ["s3n://lake/raw/2024/", "s3://lake/"]}
]}"#;
    let all = default_lints(text);
    let (etl, raw) = (position(text, "\"etl\"", 1), position(text, "\"s3n:", 0));
    assert_eq!(
        places(&all),
        [
            (Code::PartiallyShadowedMapping, N, "/RoleMappings/2", 4, 1),
            (Code::ShadowedIdentifier, W, "/RoleMappings/2/Identifiers/1", etl.0, etl.1),
            (Code::ShadowedIdentifier, W, "/RoleMappings/3/Identifiers/0", raw.0, raw.1),
        ]
    );
    says(&all[1], &["`etl` can never decide", "mapping 0 (`/RoleMappings/0`)"], &["move mapping 2 above mapping 0"]);
    says(&all[2], &["`s3n://lake/raw/2024/`", "`s3://lake/raw/` in mapping 1 (`/RoleMappings/1`)"], &[]);
    says(&all[0], &["mapping 2", "mapping 1 (`/RoleMappings/1`): `s3://lake/raw/`"], &["`User` mapping"]);
}

#[test]
fn users_and_groups_are_never_shadowed_by_prefixes_nor_prefixes_by_them() {
    let all = default_lints(
        r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["alice"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "Group", "Identifiers": ["alice"]},
{"Role": "arn:aws:iam::123456789012:role/c", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]},
{"Role": "arn:aws:iam::123456789012:role/d", "IdentifierType": "User", "Identifiers": ["bob"]}
]}"#,
    );
    assert_eq!(places(&all), [(Code::PartiallyShadowedMapping, N, "/RoleMappings/3", 5, 1)]);
}

#[test]
fn an_unreachable_mapping_lists_every_mapping_that_shadows_it() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "Group", "Identifiers": ["g1"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "Group", "Identifiers": ["g2", "g3"]},
{"Role": "arn:aws:iam::123456789012:role/c", "IdentifierType": "Group", "Identifiers": ["g3", "g1", "g1"]}
]}"#;
    let all = default_lints(text);
    let duplicate = position(text, "\"g1\"", 2);
    assert_eq!(
        places(&all),
        [
            (Code::UnreachableMapping, W, "/RoleMappings/2", 4, 1),
            (Code::DuplicateIdentifier, W, "/RoleMappings/2/Identifiers/2", duplicate.0, duplicate.1),
        ]
    );
    says(
        &all[0],
        &["mapping 2 can never decide", "by mapping 0 (`/RoleMappings/0`) or mapping 1 (`/RoleMappings/1`)"],
        &["arn:aws:iam::123456789012:role/c", "move it above mapping 0"],
    );
    says(&all[1], &["`g1` repeats identifier 1 (`/RoleMappings/2/Identifiers/1`)"], &[]);
}

#[test]
fn duplicates_compare_what_is_matched_and_redundant_identifiers_are_notes() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "Prefix", "Identifiers": ["s3://lake", "s3a://lake/", "s3://lake/x/"]}
]}"#;
    let all = default_lints(text);
    let (duplicate, redundant) = (position(text, "\"s3a:", 0), position(text, "\"s3://lake/x/", 0));
    assert_eq!(
        places(&all),
        [
            (Code::DuplicateIdentifier, W, "/RoleMappings/0/Identifiers/1", duplicate.0, duplicate.1),
            (Code::RedundantIdentifier, N, "/RoleMappings/0/Identifiers/2", redundant.0, redundant.1),
        ]
    );
    says(&all[0], &["repeats identifier 0 `s3://lake`"], &[]);
    says(&all[1], &["identifier 0 `s3://lake` (`/RoleMappings/0/Identifiers/0`)"], &[]);
}

#[test]
fn segment_mode_respects_the_key_boundary() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/abc"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/abcd", "s3://lake/abc/d"]}
]}"#;
    let codes = |prefix_match| {
        let options = ResolverOptions::new().with_prefix_match(prefix_match);
        lints(text, &options).iter().map(|d| (d.code(), d.pointer().to_owned())).collect::<Vec<_>>()
    };
    let shadowed = |p: usize| (Code::ShadowedIdentifier, format!("/RoleMappings/1/Identifiers/{p}"));
    assert_eq!(codes(PrefixMatch::Segment), [shadowed(1)], "`abc` covers `abc/d` but not `abcd`");
    let boundary = |m: usize, p: usize| (Code::PrefixBoundary, format!("/RoleMappings/{m}/Identifiers/{p}"));
    assert_eq!(
        codes(PrefixMatch::String),
        [boundary(0, 0), (Code::UnreachableMapping, "/RoleMappings/1".to_owned()), boundary(1, 0), boundary(1, 1)]
    );
}

#[test]
fn globs_shadow_only_what_they_provably_cover() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["svc-*", "u?"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "User", "Identifiers": ["svc-etl", "svc-e*", "u1", "u12", "v*"]},
{"Role": "arn:aws:iam::123456789012:role/c", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/"]},
{"Role": "arn:aws:iam::123456789012:role/d", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/*", "s3://la*/", "s3://lake/tmp/"]}
]}"#;
    let globs = ResolverOptions::new().with_globs(true);
    let shadowed: Vec<String> = lints(text, &globs)
        .iter()
        .filter(|d| d.code() == Code::ShadowedIdentifier)
        .map(|d| d.pointer().to_owned())
        .collect();
    assert_eq!(
        shadowed,
        [
            "/RoleMappings/1/Identifiers/0", // `svc-etl`: `svc-*` matches it
            "/RoleMappings/1/Identifiers/1", // `svc-e*`: `svc-*` matches everything it does
            "/RoleMappings/1/Identifiers/2", // `u1`: `u?` matches it (`u12` it does not)
            "/RoleMappings/3/Identifiers/0", // `s3://lake/*`: every path it matches is under `s3://lake/`
            "/RoleMappings/3/Identifiers/2", // `s3://lake/tmp/`
        ],
        "`s3://la*/` is not claimed: it matches buckets other than `lake`"
    );
    let without = lints(text, &ResolverOptions::default());
    let literal_glob = without.iter().filter(|d| d.code() == Code::LiteralGlobCharacters).count();
    assert_eq!(literal_glob, 6, "with globs off, each of the six globs is reported as literal");
    let shadowed_without: Vec<&str> =
        without.iter().filter(|d| d.code() == Code::ShadowedIdentifier).map(|d| d.pointer()).collect();
    assert_eq!(
        shadowed_without,
        ["/RoleMappings/3/Identifiers/0", "/RoleMappings/3/Identifiers/2"],
        "only literal prefixes"
    );
}

#[test]
fn identifier_checks_point_at_the_identifier() {
    let text = r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["alice@EXAMPLE.COM", "аlice", "team-?"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "Prefix", "Identifiers": ["s3://Lake/data", "s3://lake", "s3://lake/"]}
]}"#;
    let all = default_lints(text);
    let at = |needle: &str| position(text, needle, 0);
    let [kerberos, cyrillic, glob, lake, duplicate] =
        [at("\"alice@"), at("\"аlice"), at("\"team-?"), at("\"s3://Lake"), at("\"s3://lake/\"")];
    assert_eq!(
        places(&all),
        [
            (Code::KerberosPrincipal, W, "/RoleMappings/0/Identifiers/0", kerberos.0, kerberos.1),
            (Code::SuspiciousCharacters, W, "/RoleMappings/0/Identifiers/1", cyrillic.0, cyrillic.1),
            (Code::LiteralGlobCharacters, W, "/RoleMappings/0/Identifiers/2", glob.0, glob.1),
            (Code::PrefixBoundary, W, "/RoleMappings/1/Identifiers/0", lake.0, lake.1),
            (Code::InvalidBucketName, W, "/RoleMappings/1/Identifiers/0", lake.0, lake.1),
            (Code::DuplicateIdentifier, W, "/RoleMappings/1/Identifiers/2", duplicate.0, duplicate.1),
        ]
    );
    says(&all[0], &["`alice@EXAMPLE.COM` looks like a Kerberos principal"], &["`alice`"]);
    says(&all[1], &["`а` (U+0430) looks like the ASCII `a`"], &["`alice`"]);
    says(&all[2], &["`?`", "globs are off"], &[]);
    says(&all[3], &["sibling keys"], &["`s3://Lake/data/`"]);
    says(&all[4], &["`Lake`", "upper-case letter `L`"], &["us-east-1"]);
}

#[test]
fn lints_of_the_describe_output_point_inside_the_embedded_document() {
    let inner = r#"{"AuthorizationConfiguration": {"EmrFsConfiguration": {"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "Group", "Identifiers": ["g", "g"]}]}}}"#;
    let text = serde_json::json!({"Name": "n", "SecurityConfiguration": inner}).to_string();
    let all = default_lints(&text);
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].embedded_in(), Some("/SecurityConfiguration"));
    let (line, column) = position(inner, "\"g\"", 1);
    assert_eq!(
        (all[0].pointer(), all[0].location().map_or(0, |at| at.line), all[0].location().map_or(0, |at| at.column)),
        ("/AuthorizationConfiguration/EmrFsConfiguration/RoleMappings/0/Identifiers/1", line, column)
    );
}

#[test]
fn documents_with_errors_get_no_lints() {
    let checked = check(
        br#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["u", "u"]},
{"Role": "not-an-arn", "IdentifierType": "User", "Identifiers": ["u"]}
]}"#,
        &ResolverOptions::default(),
    );
    let codes: Vec<Code> = checked.diagnostics.iter().map(|d| d.code()).collect();
    assert_eq!(codes, [Code::InvalidRoleArn]);
}

#[test]
fn clean_configurations_have_no_lints() {
    let all = default_lints(
        r#"{"RoleMappings": [
{"Role": "arn:aws:iam::123456789012:role/a", "IdentifierType": "User", "Identifiers": ["etl", "airflow"]},
{"Role": "arn:aws:iam::123456789012:role/b", "IdentifierType": "Group", "Identifiers": ["analysts"]},
{"Role": "arn:aws:iam::123456789012:role/c", "IdentifierType": "Prefix", "Identifiers": ["s3://lake/raw/", "s3://lake/curated/", "s3://scratch"]}
]}"#,
    );
    assert!(all.is_empty(), "{all:#?}");
}
