//! Authentication (§1.1) and the permission checks: a token as the Basic user name with an empty
//! password on every version, `Bearer` from 10.0, analysis tokens that authorize no web API
//! action.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;
use base64::Engine as _;

use super::{
    seed::TokenKind,
    state::{Project, State, UserId},
    ws::Fail,
};

pub(crate) const AUTHENTICATION_REQUIRED: &str = "Authentication is required";
pub(crate) const INSUFFICIENT_PRIVILEGES: &str = "Insufficient privileges";

/// `MAJOR.MINOR[.PATCH[.BUILD]]`, digits only; the major and minor are what gates compare.
pub(crate) fn parse_version(version: &str) -> Option<(u32, u32)> {
    let parts: Vec<&str> = version.split('.').collect();
    if parts.len() < 2
        || parts.len() > 4
        || parts.iter().any(|p| p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return None;
    }
    Some((parts[0].parse().ok()?, parts[1].parse().ok()?))
}

/// Bearer is honoured from 10.0; calendar versions (YY.M, YYYY.N) are all later.
pub(crate) fn bearer_supported(version: &str) -> bool {
    parse_version(version).is_some_and(|(major, _)| major >= 10)
}

/// Who is calling. `kind` is `None` for anonymous callers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Caller {
    pub user: Option<UserId>,
    pub kind: Option<TokenKind>,
}

impl Caller {
    pub const ANONYMOUS: Caller = Caller { user: None, kind: None };

    /// A user token: analysis tokens carry no web API permission.
    fn acting_user(&self) -> Option<UserId> {
        self.user.filter(|_| self.kind == Some(TokenKind::User))
    }
}

/// The kind of `Authorization` header, for the log.
pub(crate) fn auth_kind(header: Option<&HeaderValue>) -> &'static str {
    match header.and_then(|h| h.to_str().ok()) {
        None => "none",
        Some(h) if h.len() >= 7 && h[..7].eq_ignore_ascii_case("bearer ") => "bearer",
        Some(h) if h.len() >= 6 && h[..6].eq_ignore_ascii_case("basic ") => "basic",
        Some(_) => "other",
    }
}

/// Resolves the header: `Err` is the 401 a refused credential gets.
pub(crate) fn authenticate(state: &State, header: Option<&HeaderValue>) -> Result<Caller, Fail> {
    let Some(value) = header.and_then(|h| h.to_str().ok()) else {
        return Ok(Caller::ANONYMOUS);
    };
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    let token = if scheme.eq_ignore_ascii_case("bearer") {
        if !bearer_supported(&state.version) {
            return Ok(Caller::ANONYMOUS);
        }
        rest.trim().to_owned()
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(unauthorized)?;
        match decoded.split_once(':') {
            Some((token, "")) => token.to_owned(),
            // A login with a password: the seed has no passwords, so no such login succeeds.
            _ => return Err(unauthorized()),
        }
    } else {
        return Ok(Caller::ANONYMOUS);
    };
    let found = state.tokens.get(&token).ok_or_else(unauthorized)?;
    if let Some(date) = &found.expired_on {
        return Err(Fail::v1(401, format!("The token expired on {date}")));
    }
    Ok(Caller { user: Some(found.user), kind: Some(found.kind) })
}

pub(crate) fn unauthorized() -> Fail {
    Fail::v1(401, AUTHENTICATION_REQUIRED)
}

pub(crate) fn is_admin(state: &State, caller: &Caller) -> bool {
    caller.acting_user().and_then(|uid| state.users.get(uid)).is_some_and(|u| u.admin)
}

pub(crate) fn can_create_projects(state: &State, caller: &Caller) -> bool {
    caller.acting_user().and_then(|uid| state.users.get(uid)).is_some_and(|u| u.admin || u.create_projects)
}

/// Project Administer: system administrators have it on every project.
pub(crate) fn is_project_admin(state: &State, caller: &Caller, project: &Project) -> bool {
    is_admin(state, caller) || caller.acting_user().is_some_and(|uid| project.admins.contains(&uid))
}

/// 401 for anonymous callers, 403 for those without the permission.
pub(crate) fn check(caller: &Caller, allowed: bool) -> Result<(), Fail> {
    match (caller.user, allowed) {
        (_, true) => Ok(()),
        (None, false) => Err(unauthorized()),
        (Some(_), false) => Err(Fail::v1(403, INSUFFICIENT_PRIVILEGES)),
    }
}

/// Today (UTC) as `YYYY-MM-DD`, the date an expired token reports.
pub(crate) fn today() -> String {
    let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400) as i64;
    // Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_of_all_three_schemes_parse_and_gate_bearer() {
        assert_eq!(parse_version("9.9.8.100196"), Some((9, 9)));
        assert_eq!(parse_version("26.7.0.124771"), Some((26, 7)));
        assert_eq!(parse_version("2026.3.1.123439"), Some((2026, 3)));
        for bad in ["", "10", "10.x", "1.2.3.4.5", "v10.0", "10..1"] {
            assert_eq!(parse_version(bad), None, "{bad}");
        }
        assert!(!bearer_supported("9.9.8.100196"));
        assert!(bearer_supported("10.0.0.68432"));
        assert!(bearer_supported("25.1.0.102122"));
    }

    #[test]
    fn today_is_a_plausible_date() {
        let date = today();
        let year: i32 = date[..4].parse().unwrap();
        assert!(year >= 2024, "{date}");
        assert_eq!(date.len(), 10);
        assert_eq!((&date[4..5], &date[7..8]), ("-", "-"));
    }
}
