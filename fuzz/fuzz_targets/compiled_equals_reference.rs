//! Arbitrary small configurations and requests, decoded from the fuzzer's bytes over small alphabets
//! so that identifiers collide and share prefixes: the compiled resolver must answer exactly as the
//! reference resolver, in both prefix modes and with globs on and off.
#![no_main]

use emrfs_rolemap::{PrefixMatch, ReferenceResolver, Request, ResolverBuilder, ResolverOptions, S3Path, SecurityConfiguration};
use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 8] = ["u0", "u1", "U1", "g0", "g1", "u*", "g?", "[ug]1"];
const BUCKETS: [&str; 4] = ["b", "ba", "bar", "barn"];
const SEGMENTS: [&str; 8] = ["a", "ab", "abc", "x", "", "a*", "{a,x}", "?"];
const SCHEMES: [&str; 4] = ["s3", "s3a", "s3n", "S3A"];

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn next(&mut self) -> usize {
        match self.0.split_first() {
            Some((b, rest)) => {
                self.0 = rest;
                usize::from(*b)
            }
            None => 0,
        }
    }

    fn pick<'s>(&mut self, from: &[&'s str]) -> &'s str {
        from[self.next() % from.len()]
    }

    fn path(&mut self) -> String {
        let mut path = format!("{}://{}", self.pick(&SCHEMES), self.pick(&BUCKETS));
        for _ in 0..self.next() % 4 {
            path.push('/');
            path.push_str(self.pick(&SEGMENTS));
        }
        if self.next() % 3 == 0 {
            path.push('/');
        }
        path
    }
}

fuzz_target!(|data: &[u8]| {
    let mut bytes = Bytes(data);
    let mut mappings = Vec::new();
    for index in 0..1 + bytes.next() % 12 {
        let kind = ["User", "Group", "Prefix"][bytes.next() % 3];
        let identifiers: Vec<String> = (0..1 + bytes.next() % 3)
            .map(|_| if kind == "Prefix" { bytes.path() } else { bytes.pick(&NAMES).to_owned() })
            .collect();
        mappings.push(format!(
            r#"{{"Role": "arn:aws:iam::123456789012:role/r{index}", "IdentifierType": "{kind}", "Identifiers": {identifiers:?}}}"#
        ));
    }
    let text = format!(r#"{{"RoleMappings": [{}]}}"#, mappings.join(","));
    let Ok(config) = SecurityConfiguration::from_json(&text) else { return };
    let requests: Vec<(Option<String>, Vec<String>, Option<String>)> = (0..4)
        .map(|_| {
            let user = (bytes.next() % 4 != 0).then(|| bytes.pick(&NAMES).to_owned());
            let groups = (0..bytes.next() % 4).map(|_| bytes.pick(&NAMES).to_owned()).collect();
            let path = (bytes.next() % 4 != 0).then(|| bytes.path());
            (user, groups, path)
        })
        .collect();
    for prefix_match in [PrefixMatch::String, PrefixMatch::Segment] {
        for globs in [false, true] {
            let options = ResolverOptions::new().with_prefix_match(prefix_match).with_globs(globs);
            let (Ok(compiled), Ok(reference)) =
                (ResolverBuilder::with_options(options.clone()).build(&config), ReferenceResolver::new(&config, &options))
            else {
                continue;
            };
            for (user, groups, path) in &requests {
                let path = path.as_deref().and_then(|p| S3Path::parse(p).ok());
                let request = Request { user: user.as_deref(), groups, path };
                let expected = reference.resolve(&request);
                assert_eq!(compiled.resolve(&request), expected, "{text}\n{request:?} {options:?}");
                let principal = compiled.prepare(request.user, groups);
                assert_eq!(principal.resolve(path.as_ref()), expected);
            }
        }
    }
});
