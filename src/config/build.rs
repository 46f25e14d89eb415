//! Building the model of a security configuration, with every error found on the way.
//!
//! [`build`] reads bytes through the positioned JSON parser, recognises the form of the document,
//! walks to `RoleMappings` and checks each mapping, collecting one [`Diagnostic`] per problem with its
//! JSON pointer, line and column. Nothing stops at the first error: a user fixes a file in one pass.
//! With globs on, each glob identifier is compiled here, once, and kept in the model. The lints of
//! [`crate::check`] add warnings and notes to a configuration without errors.

use super::json::{self, Member, Node, Value, push_pointer_token};
use super::{
    CompiledGlobs, Identifier, IdentifierType, InputForm, MAX_DOCUMENT_BYTES, ResolverOptions, RoleArn, RoleMapping,
    SecurityConfiguration,
};
use crate::diagnostics::{Code, Diagnostic, Diagnostics, Location, Locator, Severity, closest};
use crate::matching::{CompiledGlob, is_glob};
use crate::s3path::S3Path;
use std::sync::Arc;

/// The keys of one role mapping, all required.
const MAPPING_KEYS: [&str; 3] = ["Role", "IdentifierType", "Identifiers"];
const IDENTIFIER_TYPES: [&str; 3] = ["User", "Group", "Prefix"];
const ACCEPTED_FORMS: &str = "a security configuration (`{\"AuthorizationConfiguration\": {\"EmrFsConfiguration\": {\"RoleMappings\": [...]}}}`), the output of `aws emr describe-security-configuration`, `{\"EmrFsConfiguration\": {...}}` or `{\"RoleMappings\": [...]}`";

/// Builds the model of the document in `bytes` for `options`: the configuration when there is no
/// error, and every error found (the lints of [`crate::check`] add warnings and notes).
pub(crate) fn build(bytes: &[u8], options: &ResolverOptions) -> (Option<SecurityConfiguration>, Diagnostics) {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        let mut v = Validator::new("", None);
        v.error_at(
            Code::DocumentTooLarge,
            format!("the document is larger than the {} MiB accepted", MAX_DOCUMENT_BYTES >> 20),
            "",
            0,
            "a security configuration is a few kilobytes; this is not one, or it holds far more mappings than EMR can use",
        );
        return (None, Diagnostics::new(v.diagnostics, String::new(), None));
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            let lossy = String::from_utf8_lossy(bytes).into_owned();
            let mut v = Validator::new(&lossy, None);
            v.error_at(
                Code::InvalidUtf8,
                format!("the file is not valid UTF-8: invalid byte at offset {}", e.valid_up_to()),
                "",
                e.valid_up_to(),
                "save the configuration as UTF-8; JSON documents must be UTF-8",
            );
            return (None, Diagnostics::new(v.diagnostics, lossy, None));
        }
    };
    let mut outer = Validator::new(text, None);
    let Some(root) = outer.parse() else {
        return outer.finish(None, text, None);
    };
    let Value::Object(_) = root.value else {
        outer.error_at(
            Code::UnrecognizedDocument,
            format!("the document is {}, not a JSON object", root.value.type_name()),
            "",
            root.offset,
            format!("accepted documents are {ACCEPTED_FORMS}"),
        );
        return outer.finish(None, text, None);
    };
    if let Some(member) = root.get("SecurityConfiguration") {
        let pointer = "/SecurityConfiguration";
        let Value::String(inner_text) = &member.value.value else {
            outer.wrong_type(pointer, &member.value, "a string holding the security configuration as JSON");
            return outer.finish(None, text, None);
        };
        let mut inner = Validator::new(inner_text, Some(pointer.to_owned()));
        let config =
            inner.parse().and_then(|inner_root| inner.document(&inner_root, InputForm::DescribeOutput, options));
        outer.diagnostics.append(&mut inner.diagnostics);
        return outer.finish(config, text, Some(inner_text.clone()));
    }
    let config = outer.document(&root, InputForm::SecurityConfiguration, options);
    outer.finish(config, text, None)
}

struct Validator<'t> {
    text: &'t str,
    locator: Locator<'t>,
    embedded_in: Option<String>,
    diagnostics: Vec<Diagnostic>,
    /// The mapping being read, and the globs compiled so far, by mapping index and position.
    mapping_index: usize,
    globs: CompiledGlobs,
}

impl<'t> Validator<'t> {
    fn new(text: &'t str, embedded_in: Option<String>) -> Self {
        Validator {
            text,
            locator: Locator::new(text),
            embedded_in,
            diagnostics: Vec::new(),
            mapping_index: 0,
            globs: Vec::new(),
        }
    }

    fn finish(
        self,
        config: Option<SecurityConfiguration>,
        document: &str,
        embedded: Option<String>,
    ) -> (Option<SecurityConfiguration>, Diagnostics) {
        let mut diagnostics = Diagnostics::new(Vec::new(), document.to_owned(), embedded);
        diagnostics.extend(self.diagnostics);
        let config = config.filter(|_| diagnostics.error_count() == 0);
        (config, diagnostics)
    }

    fn location(&mut self, offset: usize) -> Location {
        self.locator.locate(offset)
    }

    fn error_at(
        &mut self,
        code: Code,
        message: impl Into<String>,
        pointer: &str,
        offset: usize,
        help: impl Into<String>,
    ) {
        let location = self.location(offset);
        let error =
            Diagnostic::new(code, Severity::Error, message, help).at(pointer, location, self.embedded_in.clone());
        self.diagnostics.push(error);
    }

    /// Gives the last diagnostic a related place: the value at `pointer` and `location`, which `label`
    /// describes.
    fn relate_last(&mut self, pointer: &str, location: Location, label: &str) {
        if let Some(last) = self.diagnostics.pop() {
            self.diagnostics.push(last.with_related(pointer, location, label));
        }
    }

    fn wrong_type(&mut self, pointer: &str, node: &Node, expected: &str) {
        self.error_at(
            Code::WrongType,
            format!("expected {expected}, found {}", node.value.type_name()),
            pointer,
            node.offset,
            format!("`{pointer}` must be {expected}"),
        );
    }

    /// Parses the text as JSON, reporting a syntax error or duplicate keys.
    fn parse(&mut self) -> Option<Node> {
        match json::parse(self.text) {
            Err(e) => {
                let what = if self.embedded_in.is_some() {
                    "the embedded security configuration is not valid JSON: "
                } else {
                    ""
                };
                self.error_at(Code::JsonSyntax, format!("{what}{}", e.message), "", e.offset, e.help);
                None
            }
            Ok(parsed) => {
                for (object, key, offset, first) in parsed.duplicate_keys {
                    let mut pointer = object;
                    push_pointer_token(&mut pointer, &key);
                    self.error_at(
                        Code::DuplicateKey,
                        format!("the key `{key}` appears more than once in the same object"),
                        &pointer,
                        offset,
                        "JSON readers disagree on which duplicate wins; keep exactly one",
                    );
                    let first = self.location(first);
                    self.relate_last(&pointer, first, "first written here");
                }
                Some(parsed.root)
            }
        }
    }

    /// Recognises the form of a document and validates its role mappings.
    fn document(&mut self, root: &Node, form: InputForm, options: &ResolverOptions) -> Option<SecurityConfiguration> {
        let Value::Object(root_members) = &root.value else {
            self.error_at(
                Code::UnrecognizedDocument,
                format!("the security configuration is {}, not a JSON object", root.value.type_name()),
                "",
                root.offset,
                format!("accepted documents are {ACCEPTED_FORMS}"),
            );
            return None;
        };
        // A bare form is recognised by its key, or failing every exact key, by a near miss of it (such as
        // `RoleMapping`), so that the error below names the misspelled key instead of the full form's path.
        let bare = form != InputForm::DescribeOutput;
        let exact = |key: &str| root.get(key).is_some();
        let near = |key: &str| {
            !exact("AuthorizationConfiguration") && closest(key, root_members.iter().map(|m| m.key.as_str())).is_some()
        };
        let (form, path): (InputForm, &[&str]) = if bare && exact("RoleMappings") {
            (InputForm::RoleMappings, &["RoleMappings"])
        } else if bare && exact("EmrFsConfiguration") {
            (InputForm::EmrFsConfiguration, &["EmrFsConfiguration", "RoleMappings"])
        } else if bare && near("RoleMappings") {
            (InputForm::RoleMappings, &["RoleMappings"])
        } else if bare && near("EmrFsConfiguration") {
            (InputForm::EmrFsConfiguration, &["EmrFsConfiguration", "RoleMappings"])
        } else {
            (form, &["AuthorizationConfiguration", "EmrFsConfiguration", "RoleMappings"])
        };
        let mut node = root;
        let mut pointer = String::new();
        for key in path {
            let Value::Object(members) = &node.value else {
                self.wrong_type(&pointer, node, "an object");
                return None;
            };
            match members.iter().find(|m| m.key == *key) {
                Some(member) => node = &member.value,
                None => {
                    let at = if pointer.is_empty() { "the document".to_owned() } else { format!("`{pointer}`") };
                    // Point at a misspelled key when there is one, otherwise at the object that lacks the key.
                    let near = closest(key, members.iter().map(|m| m.key.as_str()))
                        .and_then(|found| members.iter().find(|m| m.key == found));
                    let (at_pointer, offset, help) = match near {
                        Some(found) => {
                            let mut found_pointer = pointer.clone();
                            push_pointer_token(&mut found_pointer, &found.key);
                            (found_pointer, found.key_offset, format!("found `{}`; did you mean `{key}`?", found.key))
                        }
                        None => {
                            (pointer.clone(), node.offset, format!("EMRFS role mappings live at `/{}`", path.join("/")))
                        }
                    };
                    self.error_at(
                        Code::MissingRoleMappings,
                        format!("{at} has no `{key}`, so there are no role mappings"),
                        &at_pointer,
                        offset,
                        help,
                    );
                    return None;
                }
            }
            push_pointer_token(&mut pointer, key);
        }
        let mappings = self.role_mappings(node, &pointer, options)?;
        let globs = options.globs().then(|| (options.prefix_match(), std::mem::take(&mut self.globs)));
        Some(SecurityConfiguration::new(form, pointer, self.embedded_in.clone(), mappings, globs))
    }

    /// The items of `node` when it is an array of at least one; otherwise an error: `wrong-type`
    /// naming `expected`, or the `(code, message, help)` of an empty array.
    fn non_empty_array<'n>(
        &mut self,
        node: &'n Node,
        pointer: &str,
        expected: &str,
        (code, message, help): (Code, &str, &str),
    ) -> Option<&'n [Node]> {
        let Value::Array(items) = &node.value else {
            self.wrong_type(pointer, node, expected);
            return None;
        };
        if items.is_empty() {
            self.error_at(code, message, pointer, node.offset, help);
            return None;
        }
        Some(items)
    }

    fn role_mappings(&mut self, node: &Node, pointer: &str, options: &ResolverOptions) -> Option<Vec<RoleMapping>> {
        let empty = (
            Code::EmptyRoleMappings,
            "`RoleMappings` is empty",
            "add at least one mapping such as `{\"Role\": \"arn:aws:iam::123456789012:role/NAME\", \"IdentifierType\": \"User\", \"Identifiers\": [\"alice\"]}`, or remove `EmrFsConfiguration`",
        );
        let items = self.non_empty_array(node, pointer, "an array of role mappings", empty)?;
        let mut mappings = Vec::with_capacity(items.len());
        let mut all_valid = true;
        for (index, item) in items.iter().enumerate() {
            let item_pointer = format!("{pointer}/{index}");
            self.mapping_index = index;
            match self.role_mapping(item, &item_pointer, options) {
                Some(mapping) => mappings.push(mapping),
                None => all_valid = false,
            }
        }
        all_valid.then_some(mappings)
    }

    fn role_mapping(&mut self, node: &Node, pointer: &str, options: &ResolverOptions) -> Option<RoleMapping> {
        let Value::Object(members) = &node.value else {
            self.wrong_type(pointer, node, "a role mapping object");
            return None;
        };
        let location = self.location(node.offset);
        let mut valid = true;
        for member in members.iter().filter(|m| !MAPPING_KEYS.contains(&m.key.as_str())) {
            let mut key_pointer = pointer.to_owned();
            push_pointer_token(&mut key_pointer, &member.key);
            let help = match closest(&member.key, MAPPING_KEYS) {
                Some(near) => format!(
                    "did you mean `{near}`? A role mapping has exactly `Role`, `IdentifierType` and `Identifiers`"
                ),
                None => {
                    "a role mapping has exactly the keys `Role`, `IdentifierType` and `Identifiers`; remove this one"
                        .to_owned()
                }
            };
            self.error_at(
                Code::UnknownKey,
                format!("unknown key `{}` in a role mapping", member.key),
                &key_pointer,
                member.key_offset,
                help,
            );
            valid = false;
        }
        // A key that is missing because it is misspelled is one mistake: the `unknown-key` above names
        // the key it misses.
        let misspelled = |key: &str| {
            members
                .iter()
                .any(|m| !MAPPING_KEYS.contains(&m.key.as_str()) && closest(&m.key, MAPPING_KEYS) == Some(key))
        };
        let field = |v: &mut Self, key: &str| -> Option<&Member> {
            let found = members.iter().find(|m| m.key == key);
            if found.is_none() && !misspelled(key) {
                v.error_at(
                    Code::MissingKey,
                    format!("the role mapping has no `{key}`"),
                    pointer,
                    node.offset,
                    format!("every role mapping needs `Role`, `IdentifierType` and `Identifiers`; add `{key}`"),
                );
            }
            found
        };
        let role = field(self, "Role").and_then(|m| self.role(&m.value, &format!("{pointer}/Role")));
        let identifier_type = field(self, "IdentifierType")
            .and_then(|m| self.identifier_type(&m.value, &format!("{pointer}/IdentifierType")));
        let identifiers = field(self, "Identifiers")
            .and_then(|m| self.identifiers(&m.value, &format!("{pointer}/Identifiers"), identifier_type, options));
        let (Some(role), Some(identifier_type), Some(identifiers)) = (role, identifier_type, identifiers) else {
            return None;
        };
        valid.then(|| RoleMapping::new(role, identifier_type, identifiers, location))
    }

    fn role(&mut self, node: &Node, pointer: &str) -> Option<RoleArn> {
        let Value::String(text) = &node.value else {
            self.wrong_type(pointer, node, "a string holding an IAM role ARN");
            return None;
        };
        match RoleArn::parse(text) {
            Ok(arn) => Some(arn),
            Err(e) => {
                self.error_at(
                    Code::InvalidRoleArn,
                    format!("`{text}` is not an IAM role ARN: {e}"),
                    pointer,
                    node.offset,
                    e.help(),
                );
                None
            }
        }
    }

    fn identifier_type(&mut self, node: &Node, pointer: &str) -> Option<IdentifierType> {
        let Value::String(text) = &node.value else {
            self.wrong_type(pointer, node, "one of the strings `User`, `Group` or `Prefix`");
            return None;
        };
        match text.as_str() {
            "User" => Some(IdentifierType::User),
            "Group" => Some(IdentifierType::Group),
            "Prefix" => Some(IdentifierType::Prefix),
            _ => {
                let help = match closest(text, IDENTIFIER_TYPES) {
                    Some(near) => format!(
                        "did you mean `{near}`? Identifier types are case-sensitive: `User`, `Group` or `Prefix`"
                    ),
                    None => "the identifier type is exactly `User`, `Group` or `Prefix`".to_owned(),
                };
                self.error_at(
                    Code::UnknownIdentifierType,
                    format!("unknown identifier type `{text}`"),
                    pointer,
                    node.offset,
                    help,
                );
                None
            }
        }
    }

    fn identifiers(
        &mut self,
        node: &Node,
        pointer: &str,
        kind: Option<IdentifierType>,
        options: &ResolverOptions,
    ) -> Option<Vec<Identifier>> {
        let empty = (
            Code::EmptyIdentifiers,
            "`Identifiers` is empty, so the mapping can never match",
            "list at least one identifier, or remove the mapping",
        );
        let items = self.non_empty_array(node, pointer, "an array of identifier strings", empty)?;
        let mut identifiers = Vec::with_capacity(items.len());
        let mut valid = true;
        for (position, item) in items.iter().enumerate() {
            let item_pointer = format!("{pointer}/{position}");
            match self.identifier(item, &item_pointer, kind, options) {
                Some((text, glob)) => {
                    identifiers.push(Identifier::new(text, self.location(item.offset)));
                    if let Some(glob) = glob {
                        self.globs.push((self.mapping_index, position, glob));
                    }
                }
                None => valid = false,
            }
        }
        valid.then_some(identifiers)
    }

    fn identifier(
        &mut self,
        node: &Node,
        pointer: &str,
        kind: Option<IdentifierType>,
        options: &ResolverOptions,
    ) -> Option<(String, Option<Arc<CompiledGlob>>)> {
        let Value::String(text) = &node.value else {
            self.wrong_type(pointer, node, "a string");
            return None;
        };
        if text.is_empty() {
            self.error_at(
                Code::EmptyIdentifier,
                "the identifier is empty",
                pointer,
                node.offset,
                "remove the empty string or write the identifier",
            );
            return None;
        }
        if text.trim() != text {
            self.error_at(
                Code::PaddedIdentifier,
                format!("the identifier `{text}` starts or ends with white space"),
                pointer,
                node.offset,
                format!("no user, group or S3 location has surrounding white space; write `{}`", text.trim()),
            );
            return None;
        }
        if let Some(c) = text.chars().find(|c| c.is_control()) {
            self.error_at(
                Code::ControlCharacter,
                format!("the identifier `{text}` contains the control character U+{:04X}", c as u32),
                pointer,
                node.offset,
                "no user, group or S3 location contains control characters; remove it (in JSON it is written as an escape such as `\\u0000`)",
            );
            return None;
        }
        if kind == Some(IdentifierType::Prefix)
            && let Err(e) = S3Path::parse(text)
        {
            self.error_at(
                Code::InvalidPrefix,
                format!("the prefix `{text}` is not an S3 location: {e}"),
                pointer,
                node.offset,
                "a `Prefix` identifier is `s3://bucket` or `s3://bucket/key-prefix` (`s3a://` and `s3n://` also work)",
            );
            return None;
        }
        let glob = match kind {
            Some(kind) if options.globs() && is_glob(text) => {
                match CompiledGlob::new(text, kind, options.prefix_match()) {
                    Ok(glob) => Some(Arc::new(glob)),
                    Err(e) => {
                        self.error_at(
                        Code::InvalidGlob,
                        format!("the identifier `{text}` is not a valid glob: {}", e.kind()),
                        pointer,
                        node.offset,
                        "globs are enabled, so `*`, `?`, `[` and `{` are glob syntax; match a literal one with `[*]`, `[?]`, `[[]` or `[{]`",
                    );
                        return None;
                    }
                }
            }
            _ => None,
        };
        Some((text.clone(), glob))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_near_misses() {
        assert_eq!(closest("user", IDENTIFIER_TYPES), Some("User"));
        assert_eq!(closest("Users", IDENTIFIER_TYPES), Some("User"));
        assert_eq!(closest("Prefixes", IDENTIFIER_TYPES), Some("Prefix"));
        assert_eq!(closest("Grop", IDENTIFIER_TYPES), Some("Group"));
        assert_eq!(closest("Bucket", IDENTIFIER_TYPES), None);
        assert_eq!(closest("Identifier", MAPPING_KEYS), Some("Identifiers"));
        assert_eq!(closest("RoleArn", MAPPING_KEYS), None);
    }
}
