//! Levels, versions and the `level:version` pair a namespace enforces.
//!
//! Parsing follows kube-apiserver's `pod-security.kubernetes.io/*` label rules: a level is one of
//! `privileged`, `baseline`, `restricted`; a version is `latest` or `v1.<minor>`.

use std::fmt;
use std::str::FromStr;

/// A Pod Security Standards level, from least to most strict.
///
/// The variants follow the standard's order (not alphabetical) so that `Ord` compares strictness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// No restrictions: every pod is allowed.
    Privileged,
    /// Prevents known privilege escalations while staying easy to adopt.
    Baseline,
    /// Hardened: the current pod hardening best practices.
    Restricted,
}

impl Level {
    /// The level's name as written in namespace labels: `privileged`, `baseline` or `restricted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Privileged => "privileged",
            Level::Baseline => "baseline",
            Level::Restricted => "restricted",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = PodSecurityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "privileged" => Ok(Level::Privileged),
            "baseline" => Ok(Level::Baseline),
            "restricted" => Ok(Level::Restricted),
            _ => Err(PodSecurityError::InvalidLevel(s.to_owned())),
        }
    }
}

/// A policy version: `v1.<minor>` or `latest`.
///
/// `latest` is newer than every numbered version. A numbered version newer than the newest one
/// this engine knows ([`Version::NEWEST_KNOWN`]) is evaluated with the newest checks, as upstream
/// does; it keeps its own name in messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// `None` is `latest`.
    minor: Option<u32>,
}

impl Version {
    /// `latest`: always the newest checks this engine knows.
    pub const LATEST: Version = Version { minor: None };

    /// The newest numbered version whose checks this engine defines; `latest` means this one.
    pub const NEWEST_KNOWN: Version = Version {
        minor: Some(NEWEST_KNOWN_MINOR),
    };

    /// The version `v1.<minor>`.
    pub const fn v1(minor: u32) -> Version {
        Version { minor: Some(minor) }
    }

    /// Whether this is `latest`.
    pub fn is_latest(self) -> bool {
        self.minor.is_none()
    }

    /// The minor number of a `v1.<minor>` version; `None` for `latest`.
    pub fn minor(self) -> Option<u32> {
        self.minor
    }

    /// The minor version whose checks are evaluated: `latest` and versions newer than
    /// [`Version::NEWEST_KNOWN`] evaluate as the newest known one.
    pub(crate) fn effective_minor(self) -> u32 {
        match self.minor {
            Some(minor) if minor < NEWEST_KNOWN_MINOR => minor,
            _ => NEWEST_KNOWN_MINOR,
        }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // `latest` is newer than every numbered version (derived `Option` order is the reverse).
        (self.minor.is_none(), self.minor).cmp(&(other.minor.is_none(), other.minor))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.minor {
            Some(minor) => write!(f, "v1.{minor}"),
            None => f.write_str("latest"),
        }
    }
}

impl FromStr for Version {
    type Err = PodSecurityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "latest" {
            return Ok(Version::LATEST);
        }
        let invalid = || PodSecurityError::InvalidVersion(s.to_owned());
        let digits = s.strip_prefix("v1.").ok_or_else(invalid)?;
        // Upstream accepts `v1.0` and `v1.<n>` without leading zeros, digits only.
        let well_formed = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        if !well_formed {
            return Err(invalid());
        }
        digits
            .parse::<u32>()
            .map(Version::v1)
            .map_err(|_| invalid())
    }
}

/// The policy a namespace enforces: a level at a version, written `level:version`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LevelVersion {
    /// The level.
    pub level: Level,
    /// The version of that level's checks.
    pub version: Version,
}

impl LevelVersion {
    /// The pair `level:version`.
    pub const fn new(level: Level, version: Version) -> Self {
        LevelVersion { level, version }
    }
}

impl fmt::Display for LevelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.level, self.version)
    }
}

/// Parses a level and a version as written in `pod-security.kubernetes.io/<mode>` and
/// `pod-security.kubernetes.io/<mode>-version` labels, e.g. `("restricted", "v1.25")` or
/// `("baseline", "latest")`.
///
/// ```
/// use portcullis_admission::pod_security::{parse_level_version, Level, Version};
///
/// let policy = parse_level_version("restricted", "v1.25").unwrap();
/// assert_eq!(policy.level, Level::Restricted);
/// assert_eq!(policy.version, Version::v1(25));
/// assert_eq!(policy.to_string(), "restricted:v1.25");
/// ```
pub fn parse_level_version(level: &str, version: &str) -> Result<LevelVersion, PodSecurityError> {
    Ok(LevelVersion::new(level.parse()?, version.parse()?))
}

/// A level or version that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PodSecurityError {
    /// The level is not `privileged`, `baseline` or `restricted`.
    #[error("invalid pod security level `{0}`: must be one of privileged, baseline, restricted")]
    InvalidLevel(String),
    /// The version is not `latest` or `v1.<minor>`.
    #[error("invalid pod security version `{0}`: must be \"latest\" or \"v1.x\"")]
    InvalidVersion(String),
}

/// The newest minor version with a check definition (sysctls gained names in v1.37).
const NEWEST_KNOWN_MINOR: u32 = 37;
