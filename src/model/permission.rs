//! Permission patterns `<type>.<action>` with `*` on either side.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

/// One side of a permission: a name or `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Matches anything.
    Any,
    /// Matches exactly this name.
    Exact(String),
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(s) => s == value,
        }
    }
}

/// A permission pattern such as `workflow.execute`, `*.view` or `connection.*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permission {
    /// Resource type side.
    pub rtype: Pattern,
    /// Action side.
    pub action: Pattern,
}

impl Permission {
    /// Parses and validates a pattern; `field` names the request field.
    pub fn parse(field: &str, s: &str) -> Result<Self> {
        let Some((t, a)) = s.split_once('.') else {
            // Quote at most the start of it: an error travels in a header.
            let shown: String = s.chars().take(64).collect();
            let more = if shown.len() < s.len() { "…" } else { "" };
            return Err(Error::invalid(
                field,
                format!(
                    "`{shown}{more}` must look like `<type>.<action>` (`*` allowed on either side)"
                ),
            ));
        };
        let side = |part: &str| -> Result<Pattern> {
            if part == "*" {
                Ok(Pattern::Any)
            } else {
                crate::model::validate_name(field, part)?;
                Ok(Pattern::Exact(part.to_owned()))
            }
        };
        Ok(Self {
            rtype: side(t)?,
            action: side(a)?,
        })
    }

    /// Whether the pattern covers `<rtype>.<action>`.
    pub fn matches(&self, rtype: &str, action: &str) -> bool {
        self.rtype.matches(rtype) && self.action.matches(action)
    }

    /// Whether some concrete action named by this pattern is `action`.
    pub fn names_action(&self) -> Option<&str> {
        match &self.action {
            Pattern::Exact(a) => Some(a),
            Pattern::Any => None,
        }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = |p: &Pattern| match p {
            Pattern::Any => "*".to_owned(),
            Pattern::Exact(s) => s.clone(),
        };
        write!(f, "{}.{}", side(&self.rtype), side(&self.action))
    }
}

impl Serialize for Permission {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Permission {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Permission::parse("permission", &s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_either_side() {
        let p = Permission::parse("p", "*.view").unwrap();
        assert!(p.matches("workflow", "view"));
        assert!(!p.matches("workflow", "edit"));
        let p = Permission::parse("p", "connection.*").unwrap();
        assert!(p.matches("connection", "delete"));
        assert!(!p.matches("credential", "delete"));
    }

    #[test]
    fn malformed_patterns_are_rejected_naming_the_field() {
        for bad in [
            "",
            "view",
            "a.b.c",
            "Workflow.view",
            ".view",
            "workflow.",
            "**.view",
            "a b.view",
        ] {
            let err = Permission::parse("role.permissions", bad).unwrap_err();
            assert!(err.to_string().contains("role.permissions"), "{bad}: {err}");
        }
    }
}
