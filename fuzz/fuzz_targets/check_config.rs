//! Any bytes as a security configuration: `check` must answer (never panic, never hang), and its
//! answer must be consistent: a configuration exactly when there is no error, with every diagnostic
//! positioned inside the text.
#![no_main]

use emrfs_rolemap::{ResolverBuilder, ResolverOptions, Severity, check};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    for globs in [false, true] {
        let options = ResolverOptions::new().with_globs(globs);
        let checked = check(bytes, &options);
        let errors = checked.diagnostics.iter().filter(|d| d.severity() == Severity::Error).count();
        assert_eq!(checked.config.is_some(), errors == 0);
        for d in checked.diagnostics.iter() {
            let at = d.location().expect("every diagnostic of a document has a place in it");
            assert!(at.line >= 1 && at.column >= 1);
            assert!(!d.message().is_empty() && !d.help().is_empty());
        }
        let _ = checked.diagnostics.render("fuzz.json");
        if let Some(config) = checked.config {
            assert!(ResolverBuilder::with_options(options).build(&config).is_ok());
        }
    }
});
