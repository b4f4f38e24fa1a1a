//! Image references: Docker's grammar and normalisation, as the container runtime reads them.
//!
//! The grammar is docker/distribution's `reference` package; normalisation is its
//! `ParseNormalizedNamed`, which kubelet and containerd also use: `nginx` is
//! `docker.io/library/nginx`, `user/app` is `docker.io/user/app`, and a first path component is a
//! registry host only when it has a `.` or `:`, is `localhost`, or has an upper-case letter.
//! Unlike Docker, the host is lower-cased before anything is compared, because DNS names are
//! case-insensitive and a policy must not be dodged by writing `GHCR.IO`.

use std::borrow::Cow;
use std::fmt;

/// A parsed and normalised container image reference, borrowing from the string it was read from.
///
/// ```
/// use portcullis_admission::image_policy::ImageReference;
///
/// let image = ImageReference::parse("nginx:1.27").unwrap();
/// assert_eq!(image.domain(), "docker.io");
/// assert_eq!(image.path(), "library/nginx");
/// assert_eq!(image.tag(), Some("1.27"));
/// assert_eq!(image.to_string(), "docker.io/library/nginx:1.27");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference<'a> {
    /// Lower-case registry host, with its port if any; `index.docker.io` reads as `docker.io`.
    domain: Cow<'a, str>,
    /// Repository path within the registry, e.g. `library/nginx`.
    path: Cow<'a, str>,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
}

impl<'a> ImageReference<'a> {
    /// Parses `image` as the container runtime would, applying Docker's normalisation.
    pub fn parse(image: &'a str) -> Result<Self, ReferenceError> {
        if image.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if image.len() > MAX_REFERENCE_LENGTH {
            return Err(ReferenceError::TooLong);
        }
        if image.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::ForbiddenCharacter);
        }
        if is_image_id(image) {
            return Err(ReferenceError::ImageId);
        }
        let (rest, digest) = match image.split_once('@') {
            Some((rest, digest)) => (rest, Some(digest)),
            None => (image, None),
        };
        if let Some(digest) = digest {
            validate_digest(digest)?;
        }
        // The tag follows the last `:` unless that `:` belongs to a `host:port` before a `/`.
        let (name, tag) = match rest.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
            _ => (rest, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag);
        }

        let (domain, remainder) = split_domain(name);
        if !valid_domain(domain) {
            return Err(ReferenceError::InvalidHost);
        }
        let domain = lowercase(domain);
        let domain = if domain == LEGACY_DEFAULT_DOMAIN {
            Cow::Borrowed(DEFAULT_DOMAIN)
        } else {
            domain
        };
        if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ReferenceError::UppercaseRepository);
        }
        if !remainder.split('/').all(valid_path_component) {
            return Err(ReferenceError::InvalidRepository);
        }
        let path = if domain == DEFAULT_DOMAIN && !remainder.contains('/') {
            Cow::Owned(format!("{OFFICIAL_REPOSITORY_PREFIX}{remainder}"))
        } else {
            Cow::Borrowed(remainder)
        };
        if domain.len() + 1 + path.len() > MAX_NAME_LENGTH {
            return Err(ReferenceError::NameTooLong);
        }
        Ok(ImageReference {
            domain,
            path,
            tag,
            digest,
        })
    }

    /// The registry host, lower-case, with its port if one was given (e.g. `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path within the registry (e.g. `library/nginx`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The normalised repository name, `<domain>/<path>`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The tag, if one was written (an untagged reference has none, not `latest`).
    pub fn tag(&self) -> Option<&'a str> {
        self.tag
    }

    /// The digest (`<algorithm>:<hex>`), if one was written.
    pub fn digest(&self) -> Option<&'a str> {
        self.digest
    }

    /// The tag the runtime pulls when none is given and no digest pins the image: Kubernetes
    /// reads such a reference as `:latest`, e.g. when it defaults `imagePullPolicy`.
    pub fn effective_tag(&self) -> Option<&'a str> {
        match (self.tag, self.digest) {
            (None, None) => Some("latest"),
            (tag, _) => tag,
        }
    }
}

impl fmt::Display for ImageReference<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Why a string is not an image reference the container runtime would accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReferenceError {
    /// The reference is the empty string.
    #[error("the image reference is empty")]
    Empty,
    /// The reference contains whitespace or a control character.
    #[error("the image reference contains whitespace or control characters")]
    ForbiddenCharacter,
    /// The reference is a 64-character hexadecimal image ID rather than a repository.
    #[error("a 64-character hexadecimal string is an image ID, not a repository name")]
    ImageId,
    /// The digest is not `sha256:`, `sha384:` or `sha512:` followed by lower-case hex of the right length.
    #[error(
        "invalid digest: must be sha256, sha384 or sha512 with lower-case hex of the right length"
    )]
    InvalidDigest,
    /// The registry host is not a valid host name, IPv4 or bracketed IPv6 address, with an optional port.
    #[error("invalid registry host")]
    InvalidHost,
    /// A repository path component breaks Docker's grammar.
    #[error("invalid repository name")]
    InvalidRepository,
    /// The tag breaks Docker's grammar (`[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`).
    #[error("invalid tag")]
    InvalidTag,
    /// The normalised repository name is longer than 255 characters.
    #[error("repository name must not be longer than 255 characters")]
    NameTooLong,
    /// The reference is longer than any valid reference can be.
    #[error("the image reference is too long")]
    TooLong,
    /// The repository path has an upper-case letter.
    #[error("repository name must be lowercase")]
    UppercaseRepository,
}

/// Whether `domain` is a registry host: a DNS name or IPv4 address, or a bracketed IPv6
/// address, with an optional numeric port.
pub(super) fn valid_domain(domain: &str) -> bool {
    if let Some(rest) = domain.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        let address_ok =
            !address.is_empty() && address.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        return address_ok && (after.is_empty() || after.strip_prefix(':').is_some_and(valid_port));
    }
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    host.split('.').all(valid_domain_component) && port.is_none_or(valid_port)
}

/// Whether the first path component of a name is a registry host rather than part of a Docker
/// Hub repository: it has a `.` or `:`, is `localhost`, or has an upper-case letter.
pub(super) fn looks_like_host(component: &str) -> bool {
    component.contains(['.', ':'])
        || component == "localhost"
        || component.bytes().any(|b| b.is_ascii_uppercase())
}

/// Whether `component` is one `/`-separated component of a repository path:
/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
pub(super) fn valid_path_component(component: &str) -> bool {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        Start,
        Alphanumeric,
        Dot,
        Underscore,
        DoubleUnderscore,
        Dash,
    }
    let mut state = State::Start;
    for byte in component.bytes() {
        let alphanumeric = byte.is_ascii_lowercase() || byte.is_ascii_digit();
        state = match (state, byte) {
            _ if alphanumeric => State::Alphanumeric,
            (State::Alphanumeric, b'.') => State::Dot,
            (State::Alphanumeric, b'_') => State::Underscore,
            (State::Underscore, b'_') => State::DoubleUnderscore,
            (State::Alphanumeric | State::Dash, b'-') => State::Dash,
            _ => return false,
        };
    }
    state == State::Alphanumeric
}

/// Splits a name into its registry host and the rest, as Docker's `splitDockerDomain` does
/// (before the host is lower-cased or `index.docker.io` mapped).
fn split_domain(name: &str) -> (&str, &str) {
    match name.split_once('/') {
        Some((first, rest)) if looks_like_host(first) => (first, rest),
        _ => (DEFAULT_DOMAIN, name),
    }
}

fn lowercase(text: &str) -> Cow<'_, str> {
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(text.to_ascii_lowercase())
    } else {
        Cow::Borrowed(text)
    }
}

fn valid_domain_component(component: &str) -> bool {
    !component.is_empty()
        && component
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !component.starts_with('-')
        && !component.ends_with('-')
}

fn valid_port(port: &str) -> bool {
    !port.is_empty() && port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut bytes = tag.bytes();
    tag.len() <= MAX_TAG_LENGTH
        && bytes.next().is_some_and(word)
        && bytes.all(|b| word(b) || b == b'.' || b == b'-')
}

/// Digests as go-digest accepts them: a registered algorithm and lower-case hex of its length.
fn validate_digest(digest: &str) -> Result<(), ReferenceError> {
    let (algorithm, hex) = digest
        .split_once(':')
        .ok_or(ReferenceError::InvalidDigest)?;
    let length = match algorithm {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return Err(ReferenceError::InvalidDigest),
    };
    if hex.len() == length && is_lower_hex(hex) {
        Ok(())
    } else {
        Err(ReferenceError::InvalidDigest)
    }
}

/// Docker refuses a bare 64-character hex string as a name: it is an image ID.
fn is_image_id(image: &str) -> bool {
    image.len() == 64 && is_lower_hex(image)
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Docker Hub, where a name without a registry host is pulled from.
pub(super) const DEFAULT_DOMAIN: &str = "docker.io";
/// Docker Hub's old name, which normalises to [`DEFAULT_DOMAIN`].
pub(super) const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
/// Single-component Docker Hub names live under `library/` (the official images).
const OFFICIAL_REPOSITORY_PREFIX: &str = "library/";
/// Docker's bound on the normalised name.
const MAX_NAME_LENGTH: usize = 255;
/// Docker's bound on a tag.
const MAX_TAG_LENGTH: usize = 128;
/// No valid reference is longer: 255 (name) + 1 + 128 (tag) + 1 + 7 + 128 (sha512 digest) < 1024.
/// Longer input is refused before parsing and never echoed in messages.
pub(super) const MAX_REFERENCE_LENGTH: usize = 1024;
