//! What a SonarQube server says about itself (`sonarqube-api.md` §1.4): its status, version (in
//! all three numbering schemes), edition, the token's user, and what it can do for the operator.

use std::{fmt, str::FromStr};

use serde::Deserialize;

use super::{Client, Error, http::Call};
use crate::bitbucket::{Secret, plain};

/// Oldest SonarQube supported: `update_bitbucket` with an optional PAT and the `monorepo`
/// parameter of bindings both exist from here on.
pub const MINIMUM_VERSION: Version =
    Version { scheme: VersionScheme::Classic, major: 8, minor: 7, patch: 0, build: None };

/// Which numbering a version follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VersionScheme {
    /// `major.minor.patch.build` up to 10.x (`9.9.4.87374`, `10.7.0.96327`).
    Classic,
    /// SonarQube Community Build, `YY.M.patch.build` (`26.7.0.124771`).
    CommunityBuild,
    /// SonarQube Server, `YYYY.N.patch.build` (`2026.3.1.123439`).
    Server,
}

/// A SonarQube version. Both calendar schemes came after 10.x, so every gate treats them as
/// later than any classic version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// Which numbering.
    pub scheme: VersionScheme,
    /// Major (a year in the calendar schemes).
    pub major: u32,
    /// Minor (a month or a release of the year in the calendar schemes).
    pub minor: u32,
    /// Patch; 0 when absent.
    pub patch: u32,
    /// Build number, when given.
    pub build: Option<u64>,
}

/// Longest version text looked at: real ones are about 15 characters.
const MAX_VERSION_TEXT: usize = 40;

impl FromStr for Version {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        // The server chose the text: it is quoted only if it is short and plain.
        let wrong = || match plain(text, MAX_VERSION_TEXT, |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-')) {
            Some(shown) => format!("{shown:?} is not a SonarQube version"),
            None => "the version the server reports is not a SonarQube version".to_owned(),
        };
        if text.len() > MAX_VERSION_TEXT {
            return Err(wrong());
        }
        let parts: Vec<&str> = text.split('.').collect();
        if !(2..=4).contains(&parts.len())
            || parts.iter().any(|p| p.is_empty() || p.len() > 10 || !p.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(wrong());
        }
        let number = |index: usize| parts.get(index).map_or(Ok(0), |p| p.parse::<u32>().map_err(|_| wrong()));
        let (major, minor, patch) = (number(0)?, number(1)?, number(2)?);
        let build = match parts.get(3) {
            Some(part) => Some(part.parse::<u64>().map_err(|_| wrong())?),
            None => None,
        };
        let scheme = match major {
            1..=10 => VersionScheme::Classic,
            // Community Build numbering started in 2024 (24.12).
            24..=99 => VersionScheme::CommunityBuild,
            2025..=2199 => VersionScheme::Server,
            _ => return Err(wrong()),
        };
        Ok(Self { scheme, major, minor, patch, build })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)?;
        if let Some(build) = self.build {
            write!(f, ".{build}")?;
        }
        Ok(())
    }
}

impl Version {
    /// Whether this version is `major.minor` or later, where a classic version is asked for:
    /// calendar versions are all later than any classic one.
    pub fn at_least_classic(&self, major: u32, minor: u32) -> bool {
        match self.scheme {
            VersionScheme::Classic => (self.major, self.minor) >= (major, minor),
            VersionScheme::CommunityBuild | VersionScheme::Server => true,
        }
    }

    /// `Authorization: Bearer` is documented from 10.0 on.
    pub fn supports_bearer(&self) -> bool {
        self.at_least_classic(10, 0)
    }

    /// How the token is sent to this version.
    pub fn auth_scheme(&self) -> AuthScheme {
        if self.supports_bearer() { AuthScheme::Bearer } else { AuthScheme::Basic }
    }

    /// `get_binding` needs only Browse from 10.1 (Administer before).
    pub fn get_binding_needs_browse_only(&self) -> bool {
        self.at_least_classic(10, 1)
    }

    /// `PUT api/v2/dop-translation/bound-projects` exists (it replaced the import call in 10.5).
    pub fn supports_bound_projects(&self) -> bool {
        self.at_least_classic(10, 5)
    }

    /// The product name this numbering belongs to.
    pub fn product(&self) -> &'static str {
        match self.scheme {
            VersionScheme::Classic => "SonarQube",
            VersionScheme::CommunityBuild => "SonarQube Community Build",
            VersionScheme::Server => "SonarQube Server",
        }
    }
}

/// How the token is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthScheme {
    /// `Authorization: Bearer <token>` (10.0 and later).
    Bearer,
    /// `Authorization: Basic base64(<token>:)`: the token as user name, empty password.
    Basic,
}

impl AuthScheme {
    pub(crate) fn header_value(self, token: &Secret) -> String {
        use base64::Engine as _;
        match self {
            Self::Bearer => format!("Bearer {}", token.expose()),
            Self::Basic => {
                let raw = format!("{}:", token.expose());
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(raw))
            }
        }
    }
}

/// What `api/system/status` reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerStatus {
    /// Serving.
    Up,
    /// `STARTING`, `DOWN`, `RESTARTING`, `DB_MIGRATION_NEEDED`, `DB_MIGRATION_RUNNING`, or another
    /// plain word.
    NotUp(String),
}

/// The edition, from `api/navigation/global`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Edition {
    /// Community Edition or Community Build.
    Community,
    /// Developer Edition.
    Developer,
    /// Enterprise Edition.
    Enterprise,
    /// Data Center Edition.
    DataCenter,
    /// Not reported, or a name this client does not know.
    Unknown,
}

impl Edition {
    fn from_name(name: Option<&str>) -> Self {
        match name.map(|n| n.trim().to_ascii_lowercase()).as_deref() {
            Some("community") => Self::Community,
            Some("developer") => Self::Developer,
            Some("enterprise") => Self::Enterprise,
            Some("datacenter") => Self::DataCenter,
            _ => Self::Unknown,
        }
    }

    /// The name for status: `community`, `developer`, `enterprise`, `datacenter`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Community => "community",
            Self::Developer => "developer",
            Self::Enterprise => "enterprise",
            Self::DataCenter => "datacenter",
            Self::Unknown => "unknown",
        }
    }
}

/// How this server binds a project to a Bitbucket repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingSupport {
    /// `api/alm_settings/set_bitbucket_binding` (Developer Edition and later).
    SetBitbucketBinding,
    /// `PUT api/v2/dop-translation/bound-projects` with the user's own PAT (Community).
    BoundProjects,
    /// Neither.
    None,
}

/// What the server can do for the operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// DevOps Platform (ALM) settings: every supported version has them.
    pub alm_settings: bool,
    /// How projects are bound.
    pub bindings: BindingSupport,
    /// Monorepo bindings (Enterprise and Data Center).
    pub monorepo: bool,
    /// More than one Bitbucket setting (`multiple-alm`: Enterprise and Data Center).
    pub several_bitbucket_settings: bool,
    /// PR decoration, which is what makes a `com.sonarsource.sonarqube` report appear (Developer
    /// and later).
    pub pull_request_decoration: bool,
}

impl Capabilities {
    /// What an edition and version offer (`sonarqube-api.md` §2.14). An unknown edition is
    /// taken as the least capable, so that nothing is promised that is not there.
    pub fn of(edition: Edition, version: &Version) -> Self {
        let commercial = matches!(edition, Edition::Developer | Edition::Enterprise | Edition::DataCenter);
        let large = matches!(edition, Edition::Enterprise | Edition::DataCenter);
        let bindings = if commercial {
            BindingSupport::SetBitbucketBinding
        } else if version.supports_bound_projects() {
            BindingSupport::BoundProjects
        } else {
            BindingSupport::None
        };
        Self {
            alm_settings: true,
            bindings,
            monorepo: large,
            several_bitbucket_settings: large,
            pull_request_decoration: commercial,
        }
    }
}

/// The token's user. Texts were checked here (characters, length), so they may be shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The login, `None` when the server's text does not look like one.
    pub login: Option<String>,
    /// The display name, `None` when absent or not plain.
    pub name: Option<String>,
}

/// What messages say instead of a login that cannot be shown.
pub const UNSHOWN_USER: &str = "a user whose login cannot be shown";

impl User {
    /// The login for a message, or [`UNSHOWN_USER`].
    pub fn shown_login(&self) -> &str {
        self.login.as_deref().unwrap_or(UNSHOWN_USER)
    }
}

/// What the connection check proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version.
    pub version: Version,
    /// The edition.
    pub edition: Edition,
    /// The token's user.
    pub user: User,
    /// What the operator can do there.
    pub capabilities: Capabilities,
}

/// Longest login kept (SonarQube allows 255).
const MAX_LOGIN: usize = 255;
/// Longest user name kept.
const MAX_NAME: usize = 200;

/// A login as SonarQube allows them: letters, digits, `.`, `_`, `-`, `@`.
fn plausible_login(text: &str) -> Option<String> {
    plain(text, MAX_LOGIN, |c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@' | '+'))
}

/// A display name: printable, no control or bidirectional-text characters.
fn plausible_name(text: &str) -> Option<String> {
    plain(text, MAX_NAME, |c| !c.is_control() && !crate::bitbucket::is_bidi_control(c))
}

#[derive(Deserialize)]
struct StatusBody {
    status: String,
}

#[derive(Deserialize)]
struct NavigationGlobal {
    #[serde(default)]
    edition: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CurrentUser {
    is_logged_in: bool,
    #[serde(default)]
    login: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// Longest status word kept.
const MAX_STATUS: usize = 32;

impl Client {
    /// `GET api/system/status`, sent without the token.
    pub async fn status(&self) -> Result<ServerStatus, Error> {
        let call = Call::new("GET api/system/status", "read the server status", "Browse").anonymous();
        let response = self.send(&call).await?;
        if !response.status.is_success() {
            return Err(self.failure(&call, &response));
        }
        let body: StatusBody = self.parse(&call, &response)?;
        Ok(match body.status.as_str() {
            "UP" => ServerStatus::Up,
            other => ServerStatus::NotUp(
                plain(other, MAX_STATUS, |c| c.is_ascii_alphanumeric() || c == '_')
                    .unwrap_or_else(|| "unreadable".into()),
            ),
        })
    }

    /// The server's version, read once (`GET api/server/version`, plain text, no token) and kept.
    pub async fn version(&self) -> Result<Version, Error> {
        self.inner.version.get_or_try_init(|| self.read_version()).await.copied()
    }

    async fn read_version(&self) -> Result<Version, Error> {
        let call = Call::new("GET api/server/version", "read the server version", "Browse").anonymous();
        let response = self.send_with(&call, None).await?;
        if !response.status.is_success() {
            return Err(self.failure(&call, &response));
        }
        let text = std::str::from_utf8(&response.body)
            .map_err(|_| Error::UnsupportedServer { reason: "the version the server reports is not text".into() })?;
        let version: Version = text.parse().map_err(|reason| Error::UnsupportedServer { reason })?;
        if !version.at_least_classic(MINIMUM_VERSION.major, MINIMUM_VERSION.minor) {
            return Err(Error::UnsupportedServer {
                reason: format!("SonarQube {version} is older than {MINIMUM_VERSION}, the oldest version supported"),
            });
        }
        Ok(version)
    }

    /// `GET api/navigation/global`: the edition.
    pub async fn edition(&self) -> Result<Edition, Error> {
        let call = Call::new("GET api/navigation/global", "read the global navigation", "Browse");
        let body: NavigationGlobal = self.send_for(&call).await?;
        Ok(Edition::from_name(body.edition.as_deref()))
    }

    /// `GET api/users/current`: the token's user. SonarQube serves an unknown token as
    /// anonymous here, so `isLoggedIn: false` is a refused token.
    pub async fn current_user(&self) -> Result<User, Error> {
        let call = Call::new("GET api/users/current", "read its own account", "Browse");
        let body: CurrentUser = self.send_for(&call).await?;
        if !body.is_logged_in {
            return Err(Error::BadToken { expired: false });
        }
        Ok(User {
            login: body.login.as_deref().and_then(plausible_login),
            name: body.name.as_deref().and_then(plausible_name),
        })
    }

    /// The connection check: up, a supported version, the edition, a recognised token, and the
    /// Administer System permission (proved by an admin-only read, never by
    /// `api/authentication/validate`, which calls anonymous callers valid).
    pub async fn server_info(&self) -> Result<ServerInfo, Error> {
        if let ServerStatus::NotUp(status) = self.status().await? {
            return Err(Error::NotUp { status });
        }
        let version = self.version().await?;
        let user = self.current_user().await?;
        let edition = self.edition().await?;
        self.list_definitions().await?;
        Ok(ServerInfo { version, edition, user, capabilities: Capabilities::of(edition, &version) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_numbering_scheme_parses_and_prints_back() {
        let cases = [
            ("9.9.4.87374", VersionScheme::Classic, (9, 9, 4), Some(87374)),
            ("10.7.0.96327", VersionScheme::Classic, (10, 7, 0), Some(96327)),
            ("8.9", VersionScheme::Classic, (8, 9, 0), None),
            ("26.7.0.124771", VersionScheme::CommunityBuild, (26, 7, 0), Some(124771)),
            ("24.12.0.100206", VersionScheme::CommunityBuild, (24, 12, 0), Some(100206)),
            ("2026.3.1.123439", VersionScheme::Server, (2026, 3, 1), Some(123439)),
            (" 2025.1.0.102418\n", VersionScheme::Server, (2025, 1, 0), Some(102418)),
        ];
        for (text, scheme, (major, minor, patch), build) in cases {
            let version: Version = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(
                (version.scheme, version.major, version.minor, version.patch, version.build),
                (scheme, major, minor, patch, build),
                "{text}"
            );
            let printed = version.to_string();
            assert_eq!(printed.parse::<Version>(), Ok(version), "{text} prints as {printed}");
        }
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        for text in [
            "",
            "ten",
            "9",
            "9.x.1",
            "9..1",
            "1.2.3.4.5",
            "0.1",
            "15.2.0",
            "150.1",
            "9.9-SNAPSHOT",
            "-1.2",
            "9.99999999999",
        ] {
            assert!(text.parse::<Version>().is_err(), "{text:?} parsed");
        }
        let junk = format!("<html>{}</html>", "x".repeat(200));
        let error = junk.parse::<Version>().expect_err("not a version");
        assert!(!error.contains("html") && !error.contains("xxx"), "{error}");
        assert_eq!("ten".parse::<Version>(), Err("\"ten\" is not a SonarQube version".to_owned()));
    }

    #[test]
    fn gates_hold_across_schemes() {
        let v = |text: &str| text.parse::<Version>().expect(text);
        assert!(!v("9.9.4.87374").supports_bearer());
        assert!(v("10.0.0.68432").supports_bearer());
        assert!(v("26.7.0.124771").supports_bearer());
        assert!(v("2026.3.1.123439").supports_bearer());
        assert!(!v("10.4.1").supports_bound_projects());
        assert!(v("10.5.0").supports_bound_projects() && v("25.1.0.102122").supports_bound_projects());
        assert!(!v("10.0.0").get_binding_needs_browse_only() && v("10.1.0").get_binding_needs_browse_only());
        assert_eq!(v("2026.3.1").product(), "SonarQube Server");
    }

    #[test]
    fn the_token_goes_as_bearer_or_as_a_basic_user_name() {
        let token = Secret::new("squ_abc");
        assert_eq!(AuthScheme::Bearer.header_value(&token), "Bearer squ_abc");
        // base64("squ_abc:")
        assert_eq!(AuthScheme::Basic.header_value(&token), "Basic c3F1X2FiYzo=");
    }

    #[test]
    fn capabilities_follow_the_edition() {
        let community_build: Version = "26.7.0.124771".parse().expect("version");
        let old: Version = "9.9.4.87374".parse().expect("version");
        let community = Capabilities::of(Edition::Community, &community_build);
        assert_eq!(community.bindings, BindingSupport::BoundProjects);
        assert!(!community.monorepo && !community.several_bitbucket_settings && !community.pull_request_decoration);
        assert_eq!(Capabilities::of(Edition::Community, &old).bindings, BindingSupport::None);
        let developer = Capabilities::of(Edition::Developer, &old);
        assert_eq!(developer.bindings, BindingSupport::SetBitbucketBinding);
        assert!(!developer.monorepo && !developer.several_bitbucket_settings);
        for edition in [Edition::Enterprise, Edition::DataCenter] {
            let large = Capabilities::of(edition, &community_build);
            assert!(large.monorepo && large.several_bitbucket_settings, "{edition:?}");
        }
        assert_eq!(Capabilities::of(Edition::Unknown, &old).bindings, BindingSupport::None);
        assert_eq!(Edition::from_name(Some("teams")), Edition::Unknown);
        assert_eq!(Edition::from_name(Some("DataCenter")), Edition::DataCenter);
    }

    #[test]
    fn only_plain_logins_and_names_are_kept() {
        assert_eq!(plausible_login("svc-sonar@example.com"), Some("svc-sonar@example.com".into()));
        assert_eq!(plausible_login("svc sonar"), None);
        assert_eq!(plausible_login(&"a".repeat(MAX_LOGIN + 1)), None);
        assert_eq!(plausible_name("Jürgen Müller (CI)"), Some("Jürgen Müller (CI)".into()));
        assert_eq!(plausible_name("evil\u{202e}txt"), None);
        assert_eq!(plausible_name("two\nlines"), None);
    }
}
