//! Tenant and project identifiers. They name directories and files, so they are checked once,
//! here, and every path is built from checked values only.

use std::fmt;

use crate::error::StoreError;

macro_rules! path_safe_id {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A checked ", $what, " id: 1–64 characters of `A-Z a-z 0-9 _ -`, not starting with `-`.")]
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(raw: &str) -> Result<$name, StoreError> {
                if tdsync_protocol::ids::is_path_safe_id(raw) {
                    Ok($name(raw.to_string()))
                } else {
                    Err(StoreError::BadRequest(format!(
                        concat!("invalid ", $what, " id {:?}: {}"),
                        raw,
                        tdsync_protocol::ids::PATH_SAFE_ID_RULE
                    )))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

path_safe_id!(TenantId, "tenant");
path_safe_id!(ProjectId, "project");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_path_safe_ids_parse() {
        assert!(ProjectId::parse("p_0123abcd").is_ok());
        assert!(TenantId::parse("acme-team").is_ok());
        for bad in ["", "../etc", "a/b", "a.b", "-x", &"x".repeat(65), "é"] {
            assert!(ProjectId::parse(bad).is_err(), "{bad}");
        }
    }
}
