//! Scopes and how they imply each other, and td's project roles mapped onto them.
//!
//! `write` implies `read`; `admin` implies `write`; `mint` implies nothing and grants nothing
//! but minting children. A token stores the scopes it was given (so listings show what was
//! asked); every check uses the closure under implication ([`Scopes::effective`]).

use std::fmt;

/// One scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Pull, status, snapshot, list projects (td's `reader`).
    Read,
    /// Push events, create projects (td's `writer`). Implies `read`.
    Write,
    /// Manage the tenant's tokens, projects and members (td's `owner`). Implies `write`.
    Admin,
    /// Mint child tokens that never exceed this one.
    Mint,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Admin, Scope::Mint];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
            Scope::Mint => "mint",
        }
    }

    pub fn parse(raw: &str) -> Result<Scope, BadScopes> {
        match raw.trim() {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            "mint" => Ok(Scope::Mint),
            other => Err(BadScopes(format!(
                "unknown scope {other:?}: use read, write, admin or mint"
            ))),
        }
    }

    fn bit(self) -> u8 {
        match self {
            Scope::Read => 1,
            Scope::Write => 2,
            Scope::Admin => 4,
            Scope::Mint => 8,
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A scope list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadScopes(pub String);

/// A non-empty set of scopes, as given (not expanded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

impl Scopes {
    /// Parses a comma list such as `read` or `write,mint`. Order and repeats do not matter.
    pub fn parse(list: &str) -> Result<Scopes, BadScopes> {
        let mut bits = 0;
        for part in list.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            bits |= Scope::parse(part)?.bit();
        }
        if bits == 0 {
            return Err(BadScopes(
                "no scope given: use a comma list of read, write, admin, mint (such as read or write,mint)"
                    .into(),
            ));
        }
        Ok(Scopes(bits))
    }

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |b, s| b | s.bit()))
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The scopes as given, in the canonical order read, write, admin, mint.
    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.0 & s.bit() != 0)
    }

    /// The closure under implication: admin ⇒ write ⇒ read.
    pub fn effective(self) -> Scopes {
        let mut bits = self.0;
        if bits & Scope::Admin.bit() != 0 {
            bits |= Scope::Write.bit();
        }
        if bits & Scope::Write.bit() != 0 {
            bits |= Scope::Read.bit();
        }
        Scopes(bits)
    }

    /// Whether these scopes grant `scope` (implications included).
    pub fn grants(self, scope: Scope) -> bool {
        self.effective().0 & scope.bit() != 0
    }

    /// Whether everything these scopes grant, `other` grants too.
    pub fn within(self, other: Scopes) -> bool {
        let (mine, theirs) = (self.effective().0, other.effective().0);
        mine & !theirs == 0
    }

    /// The first scope granted here but not by `other` (for refusal messages).
    pub fn first_beyond(self, other: Scopes) -> Option<Scope> {
        self.effective().iter().find(|s| !other.grants(*s))
    }

    pub fn names(self) -> Vec<&'static str> {
        self.iter().map(Scope::as_str).collect()
    }
}

impl fmt::Display for Scopes {
    /// The canonical comma list, which is also how scopes are stored.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.names().join(","))
    }
}

/// td's project roles (`td sync-project role`), mapped onto scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TdRole {
    Reader,
    Writer,
    Owner,
}

impl TdRole {
    pub fn parse(raw: &str) -> Option<TdRole> {
        match raw {
            "reader" => Some(TdRole::Reader),
            "writer" => Some(TdRole::Writer),
            "owner" => Some(TdRole::Owner),
            _ => None,
        }
    }

    /// td's name for the role.
    pub fn as_str(self) -> &'static str {
        match self {
            TdRole::Reader => "reader",
            TdRole::Writer => "writer",
            TdRole::Owner => "owner",
        }
    }

    /// reader = read, writer = write, owner = admin.
    pub fn scope(self) -> Scope {
        match self {
            TdRole::Reader => Scope::Read,
            TdRole::Writer => Scope::Write,
            TdRole::Owner => Scope::Admin,
        }
    }

    /// The strongest td role these scopes amount to, if any (for showing a token as td would).
    pub fn of(scopes: Scopes) -> Option<TdRole> {
        [TdRole::Owner, TdRole::Writer, TdRole::Reader]
            .into_iter()
            .find(|r| scopes.grants(r.scope()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_display_are_canonical() {
        assert_eq!(
            Scopes::parse("mint, write").unwrap().to_string(),
            "write,mint"
        );
        assert_eq!(Scopes::parse("read,read").unwrap().to_string(), "read");
        assert!(Scopes::parse("").is_err());
        assert!(Scopes::parse(" , ").is_err());
        let e = Scopes::parse("read,sync").unwrap_err();
        assert!(e.0.contains("\"sync\""), "{e}");
    }

    #[test]
    fn implications() {
        let admin = Scopes::parse("admin").unwrap();
        assert!(admin.grants(Scope::Read) && admin.grants(Scope::Write));
        assert!(!admin.grants(Scope::Mint));
        assert!(Scopes::parse("write").unwrap().within(admin));
        assert!(!Scopes::parse("mint").unwrap().within(admin));
        assert!(
            !Scopes::parse("admin")
                .unwrap()
                .within(Scopes::parse("write,mint").unwrap())
        );
        assert_eq!(
            Scopes::parse("admin")
                .unwrap()
                .first_beyond(Scopes::parse("read").unwrap()),
            Some(Scope::Write)
        );
    }

    #[test]
    fn td_roles_map_onto_scopes() {
        assert_eq!(TdRole::parse("reader").unwrap().scope(), Scope::Read);
        assert_eq!(TdRole::parse("writer").unwrap().scope(), Scope::Write);
        assert_eq!(TdRole::parse("owner").unwrap().scope(), Scope::Admin);
        assert_eq!(
            TdRole::of(Scopes::parse("write,mint").unwrap()),
            Some(TdRole::Writer)
        );
        assert_eq!(TdRole::of(Scopes::parse("mint").unwrap()), None);
    }
}
