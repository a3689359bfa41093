//! User specs as given on the command line.

use nadc_core::identity::validate_name;
use nadc_core::{ForceId, Role};

use crate::PkiError;

/// Parses a user spec `NAME:ROLE[+ROLE...]:FORCE`, e.g. `alice:analyst:AVON`
/// or `bob:investigator+supervisor:KENT`, into `(name, roles, force)`.
///
/// Role names and force codes are accepted in any letter case (force codes
/// are upper-cased). At least one role is required, and no role may repeat.
pub fn parse_user_spec(s: &str) -> Result<(String, Vec<Role>, ForceId), PkiError> {
    let bad = |reason: String| PkiError::BadUserSpec {
        spec: s.to_string(),
        reason,
    };
    let parts: Vec<&str> = s.split(':').collect();
    let [name, roles, force] = parts.as_slice() else {
        return Err(bad(format!(
            "expected 3 fields separated by ':', found {}",
            parts.len()
        )));
    };
    validate_name(name).map_err(|e| bad(e.to_string()))?;
    if roles.is_empty() {
        return Err(bad("no roles given".into()));
    }
    let mut parsed: Vec<Role> = Vec::new();
    for r in roles.split('+') {
        if r.is_empty() {
            return Err(bad("empty role name".into()));
        }
        let role: Role = r
            .parse()
            .map_err(|e: nadc_core::IdentityError| bad(e.to_string()))?;
        if parsed.contains(&role) {
            return Err(bad(format!("role {role} given more than once")));
        }
        parsed.push(role);
    }
    let force = ForceId::new(force).map_err(|e| bad(e.to_string()))?;
    Ok((name.to_string(), parsed, force))
}
