//! Registry entries of a rule (`allowedRegistries`, `blockedRegistries`) and how they match.
//!
//! An entry is a registry host (`registry.example.com`, `localhost:5000`) or a host and a
//! repository path prefix (`ghcr.io/acme/`). Matching works on whole components of the
//! normalised image name, never on raw string prefixes: `registry.example.com` does not match
//! `registry.example.com.evil.io/x`, and `ghcr.io/acme/` does not match `ghcr.io/acme-evil/x`.

use super::reference::{
    DEFAULT_DOMAIN, ImageReference, LEGACY_DEFAULT_DOMAIN, looks_like_host, valid_domain,
    valid_path_component,
};

/// One validated registry entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct RegistryPrefix {
    /// The entry as the configuration wrote it, for messages.
    written: String,
    /// Lower-case host with optional port; `index.docker.io` reads as `docker.io`.
    host: String,
    /// Repository path prefix without leading or trailing `/`; empty for a whole registry.
    path: String,
    /// The entry ended with `/`: only repositories strictly below `path` match, not `path` itself.
    below_only: bool,
}

impl RegistryPrefix {
    /// Parses an entry, or says (as an error message fragment) why it is not one.
    pub(super) fn parse(entry: &str) -> Result<Self, &'static str> {
        if entry.is_empty() {
            return Err("must not be empty");
        }
        if entry.contains("://") {
            return Err("must be a registry host or host/path prefix, without a scheme");
        }
        if entry.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain whitespace or control characters");
        }
        if entry.contains('@') {
            return Err("must not contain a digest");
        }
        let (host, rest) = entry.split_once('/').unwrap_or((entry, ""));
        if !valid_domain(host) || !looks_like_host(host) {
            return Err(
                "must start with a registry host: a name with a \".\" or \":\", or \"localhost\"",
            );
        }
        let mut host = host.to_ascii_lowercase();
        if host == LEGACY_DEFAULT_DOMAIN {
            host = DEFAULT_DOMAIN.to_owned();
        }
        let (path, below_only) = match rest.strip_suffix('/') {
            Some(path) => (path, true),
            None => (rest, false),
        };
        if !path.is_empty() && !path.split('/').all(valid_path_component) {
            return Err(
                "the path after the host must be lower-case repository path components separated by \"/\", without a tag",
            );
        }
        if host == DEFAULT_DOMAIN && !below_only && !path.is_empty() && !path.contains('/') {
            return Err(
                "is ambiguous on Docker Hub: write \"docker.io/library/<name>\" for an official image or \"docker.io/<namespace>/\" for a namespace",
            );
        }
        Ok(RegistryPrefix {
            written: entry.to_owned(),
            host,
            path: path.to_owned(),
            below_only,
        })
    }

    /// The entry as written in the configuration.
    pub(super) fn as_written(&self) -> &str {
        &self.written
    }

    /// Whether the normalised `image` is in this registry and below this path prefix.
    pub(super) fn matches(&self, image: &ImageReference<'_>) -> bool {
        if image.domain() != self.host {
            return false;
        }
        if self.path.is_empty() {
            return true;
        }
        match image.path().strip_prefix(self.path.as_str()) {
            Some("") => !self.below_only,
            Some(below) => below.starts_with('/'),
            None => false,
        }
    }
}
