//! Components of the API document that state the control plane's rules exactly (ids, names,
//! scopes, durations, roles), built from `acl`'s own constants and vocabularies. Each is a
//! marker type used as a `value_type` or parameter type, so it appears once, as a `$ref`.

use std::borrow::Cow;

use tdsync_acl::{
    EMAIL_LOCAL_SYMBOLS, MAX_DESCRIPTION, MAX_DURATION_SECONDS, MAX_EMAIL, MAX_EMAIL_LOCAL,
    MAX_NAME, Scope, TdRole, TokenState,
};
use tdsync_protocol::openapi::{email_pattern, trimmed_text_pattern, whitespace_class};
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{
        Ref, RefOr, Schema,
        extensions::Extensions,
        schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, Type},
    },
};

macro_rules! component {
    ($(#[$doc:meta])* $marker:ident, $name:literal, $schema:expr) => {
        $(#[$doc])*
        pub struct $marker;

        impl PartialSchema for $marker {
            fn schema() -> RefOr<Schema> {
                $schema.into()
            }
        }

        impl ToSchema for $marker {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

/// The scope names, as a regex alternation.
fn scope_alternation() -> String {
    let names: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
    format!("({})", names.join("|"))
}

/// `Scopes::parse`'s rule for a comma list: parts split at commas, each trimmed; empty parts
/// are skipped, any other must be a scope name; with `at_least_one`, some part must be one.
pub fn scope_list_pattern(at_least_one: bool) -> String {
    let ws = whitespace_class();
    let scope = scope_alternation();
    let list = format!("{scope}[{ws}]*(,[{ws}]*({scope}[{ws}]*)?)*");
    if at_least_one {
        format!("^[{ws},]*{list}$")
    } else {
        format!("^[{ws},]*({list})?$")
    }
}

/// `parse_duration`'s grammar: one or more `<digits><unit>` parts, trimmed, one of them not
/// zero. (Its upper bound, on the sum of the parts, is beyond a pattern: see [`DurationSchema`].)
pub fn duration_pattern() -> String {
    let ws = whitespace_class();
    let part = "[0-9]+[smhdw]";
    format!("^[{ws}]*({part})*0*[1-9][0-9]*[smhdw]({part})*[{ws}]*$")
}

component!(
    /// `ProjectId::parse`'s rule (`protocol::ids::is_path_safe_id`).
    ProjectIdSchema,
    "ProjectId",
    string()
        .pattern(Some("^[A-Za-z0-9_][A-Za-z0-9_-]{0,63}$"))
        .description(Some(
            "A project id: 1 to 64 letters, digits, `_` or `-`, not starting with `-` (tdsync's \
             own are `p_` and 12 lowercase letters or digits). In a path, any other id is no \
             project (404); in a body, it is refused (400).",
        ))
);

component!(
    /// `TokenId::parse`'s rule.
    TokenIdSchema,
    "TokenId",
    string().pattern(Some("^[0-9a-z]{12}$")).description(Some(
        "A token id: the 12 lowercase letters or digits after `tds_` (never the secret). Any \
         other id is no token (404).",
    ))
);

component!(
    /// `acl`'s name rule (project and token names).
    NameSchema,
    "Name",
    string()
        .pattern(Some(trimmed_text_pattern(1, MAX_NAME, &[])))
        .description(Some(format!(
            "Trimmed, 1 to {MAX_NAME} characters without control characters (400 otherwise)."
        )))
);

component!(
    /// `acl`'s description rule.
    DescriptionSchema,
    "Description",
    string()
        .pattern(Some(trimmed_text_pattern(0, MAX_DESCRIPTION, &['\n', '\t'])))
        .description(Some(format!(
            "Trimmed, at most {MAX_DESCRIPTION} characters; no control characters but newline \
             and tab (400 otherwise)."
        )))
);

component!(
    /// One scope name.
    ScopeSchema,
    "Scope",
    string().enum_values(Some(Scope::ALL.iter().map(|s| s.as_str())))
);

component!(
    /// A mint request's scopes: a comma list, or an array of comma lists (joined with commas).
    ScopesInputSchema,
    "ScopesInput",
    OneOfBuilder::new()
        .item(
            string()
                .pattern(Some(scope_list_pattern(true)))
                .description(Some("A comma list such as `read` or `write,mint`.")),
        )
        .item(
            // `contains` (at least one item names a scope) is added by `openapi::refine`:
            // utoipa's array schema has no field for it.
            ArrayBuilder::new()
                .items(string().pattern(Some(scope_list_pattern(false))))
                .description(Some(
                    "An array such as `[\"write\", \"mint\"]`: its items are joined with commas.",
                )),
        )
        .description(Some(
            "Scopes `read`, `write`, `admin`, `mint`, each at most once in effect; empty parts \
             are ignored, at least one scope is required, anything else is refused (400).",
        ))
);

component!(
    /// `parse_duration`'s grammar and range. The range is a bound on the sum of the parts, which
    /// no pattern states; the document says it in words and, for tools, as
    /// `x-max-total-seconds` (the contract fuzz reads it there).
    DurationSchema,
    "Duration",
    string()
        .pattern(Some(duration_pattern()))
        .description(Some(format!(
            "Digits and a unit (`s`, `m`, `h`, `d`, `w`), one or more, summed: `30m`, `12h`, \
             `1h30m`. The total must be 1 second to {MAX_DURATION_SECONDS} seconds (ten years, \
             `x-max-total-seconds`); anything else is refused (400)."
        )))
        .extensions(Some(
            Extensions::builder()
                .add("x-max-total-seconds", MAX_DURATION_SECONDS)
                .build()
        ))
);

component!(
    /// What a token reaches, as listings and mint responses show it.
    ProjectBindingSchema,
    "ProjectBinding",
    OneOfBuilder::new()
        .item(
            string()
                .enum_values(Some(["all"]))
                .description(Some("Every project of the tenant, present and future.")),
        )
        .item(
            ArrayBuilder::new()
                .items(Ref::from_schema_name("ProjectId"))
                .min_items(Some(1))
                .description(Some("Only these projects.")),
        )
);

component!(
    /// `acl::clean_email`'s rule.
    EmailSchema,
    "Email",
    string()
        .max_length(Some(MAX_EMAIL))
        .pattern(Some(email_pattern(EMAIL_LOCAL_SYMBOLS, MAX_EMAIL_LOCAL)))
        .description(Some(format!(
            "An email address: at most {MAX_EMAIL} characters; trimmed, an ASCII dot-atom local \
             part of at most {MAX_EMAIL_LOCAL} characters, `@`, and a domain of two or more labels \
             of letters, digits and inner hyphens (400 otherwise). Compared and stored lowercased."
        )))
);

component!(
    /// A PKCE S256 challenge as td makes one.
    CodeChallengeSchema,
    "CodeChallenge",
    string()
        .pattern(Some("^[A-Za-z0-9._~-]{43,128}$"))
        .description(Some(
            "base64url (no padding) of SHA-256 over the verifier: td sends 43 characters; 43 to \
             128 of `A-Z a-z 0-9 - . _ ~` are taken (400 otherwise)."
        ))
);

component!(
    /// The one PKCE method taken.
    ChallengeMethodSchema,
    "CodeChallengeMethod",
    string()
        .enum_values(Some(["S256"]))
        .description(Some("Only `S256` (400 otherwise)."))
);

component!(
    /// A value that must not be empty.
    NonEmptySchema,
    "NonEmpty",
    string()
        .min_length(Some(1))
        .description(Some("Not empty (400 otherwise)."))
);

component!(
    /// td's role names.
    RoleSchema,
    "Role",
    string()
        .enum_values(Some(
            [TdRole::Owner, TdRole::Writer, TdRole::Reader].map(TdRole::as_str),
        ))
        .description(Some(
            "td's role names: `owner` (scope admin), `writer` (write), `reader` (read)."
        ))
);

component!(
    /// A token's state.
    TokenStateSchema,
    "TokenState",
    string().enum_values(Some(
        [TokenState::Active, TokenState::Expired, TokenState::Revoked].map(TokenState::as_str),
    ))
);
