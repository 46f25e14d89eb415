//! Any text as an S3 location: parsing must answer, and a parsed path must describe its text exactly.
#![no_main]

use emrfs_rolemap::S3Path;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(path) = S3Path::parse(text) {
        assert!(!path.bucket().is_empty() && !path.bucket().contains('/'));
        let (_, rest) = text.split_once("://").expect("a parsed path has a scheme");
        assert!(rest.starts_with(path.bucket()));
        assert!(rest.ends_with(path.key()));
        assert_eq!(S3Path::parse(&path.to_string()).map(|p| (p.bucket(), p.key())), Ok((path.bucket(), path.key())));
    }
});
