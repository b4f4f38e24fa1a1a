//! Static bearer tokens from a CSV file (`--token-auth-file`), with kube-apiserver's format and
//! quirks, and the `Authorization: Bearer` header parsing that feeds every token authenticator.
//!
//! Format: `token,user,uid[,"group1,group2,..."]`, RFC 4180 quoting, no comments, leading spaces
//! kept, blank lines skipped. Tokens are kept only as salted SHA-256 digests, so the table never
//! holds a secret and a lookup's timing does not depend on how much of a guess matches.

use std::collections::HashMap;

use sha2::{Digest, Sha256};

use crate::UserInfo;

/// The longest bearer token accepted by any authenticator; longer ones are refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Why a token file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// A record has fewer than three columns.
    #[error(
        "token file '{path}' must have at least 3 columns (token, user name, user uid), found {found} (line {line})"
    )]
    Columns {
        /// The file.
        path: String,
        /// 1-based line of the record.
        line: u64,
        /// How many columns it had.
        found: usize,
    },
    /// The CSV could not be read.
    #[error("token file '{path}' is not valid CSV (line {line})")]
    Csv {
        /// The file.
        path: String,
        /// 1-based line.
        line: u64,
        /// Why.
        #[source]
        source: csv::Error,
    },
}

/// A parsed token file.
#[derive(Clone)]
pub struct TokenFile {
    salt: [u8; 32],
    users: HashMap<[u8; 32], UserInfo>,
    /// Records skipped because their token was empty, and duplicate tokens (later wins).
    pub warnings: Vec<String>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenFile")
            .field("tokens", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl TokenFile {
    /// Parses the file's `content`; `path` names it in errors; `salt` (random, per process)
    /// keys the digests the tokens are stored as.
    pub fn parse(content: &[u8], path: &str, salt: [u8; 32]) -> Result<TokenFile, TokenFileError> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::None)
            .from_reader(content);
        let mut file = TokenFile {
            salt,
            users: HashMap::new(),
            warnings: Vec::new(),
        };
        for record in reader.records() {
            let record = record.map_err(|source| TokenFileError::Csv {
                path: path.to_owned(),
                line: source.position().map(|p| p.line()).unwrap_or(0),
                source,
            })?;
            let line = record.position().map(|p| p.line()).unwrap_or(0);
            if record.iter().all(str::is_empty) {
                continue;
            }
            let field = |i: usize| record.get(i).unwrap_or("");
            if record.len() < 3 {
                return Err(TokenFileError::Columns {
                    path: path.to_owned(),
                    line,
                    found: record.len(),
                });
            }
            let token = field(0);
            if token.is_empty() {
                file.warnings
                    .push(format!("skipped empty token at line {line}"));
                continue;
            }
            let mut user = UserInfo {
                username: field(1).to_owned(),
                uid: field(2).to_owned(),
                ..UserInfo::default()
            };
            if record.len() >= 4 {
                // No trimming, and an empty column is one empty group: upstream's quirks.
                user.groups = field(3).split(',').map(str::to_owned).collect();
            }
            let key = digest(&file.salt, token);
            if file.users.insert(key, user).is_some() {
                file.warnings.push(format!(
                    "duplicate token at line {line}; the later record wins"
                ));
            }
        }
        Ok(file)
    }

    /// The user a token names, if any.
    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        if token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        self.users.get(&digest(&self.salt, token)).cloned()
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }
}

fn digest(salt: &[u8; 32], token: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(token.as_bytes());
    h.finalize().into()
}

/// What an `Authorization` header holds for the bearer-token authenticators.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bearer<'a> {
    /// No bearer token (no header, another scheme, or an empty token).
    Absent,
    /// A token.
    Token(&'a str),
    /// A token longer than [`MAX_TOKEN_BYTES`]: refused without parsing.
    TooLong,
}

/// Parses an `Authorization` header value as kube-apiserver does: trimmed, split on single
/// spaces into at most three parts, scheme compared case-insensitively; `Bearer  tok` (two
/// spaces) gives an empty token, which is ignored.
pub fn bearer(header: &str) -> Bearer<'_> {
    let auth = header.trim();
    if auth.is_empty() {
        return Bearer::Absent;
    }
    let mut parts = auth.splitn(3, ' ');
    let (Some(scheme), Some(token)) = (parts.next(), parts.next()) else {
        return Bearer::Absent;
    };
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Bearer::Absent;
    }
    if token.len() > MAX_TOKEN_BYTES {
        return Bearer::TooLong;
    }
    Bearer::Token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<TokenFile, TokenFileError> {
        TokenFile::parse(s.as_bytes(), "tokens.csv", [7; 32])
    }

    #[test]
    fn reads_users_uids_and_quoted_groups_with_upstream_quirks() {
        let f =
            parse("t1,alice,1,\"dev,ops\"\n\nt2,bob,2,\"a, b\"\nt3,carol,3,\nt4,dan,4\n").unwrap();
        let alice = f.authenticate("t1").unwrap();
        assert_eq!(
            (alice.username.as_str(), alice.uid.as_str()),
            ("alice", "1")
        );
        assert_eq!(alice.groups, ["dev", "ops"]);
        assert_eq!(
            f.authenticate("t2").unwrap().groups,
            ["a", " b"],
            "no trimming"
        );
        assert_eq!(
            f.authenticate("t3").unwrap().groups,
            [""],
            "an empty column is one empty group"
        );
        assert!(f.authenticate("t4").unwrap().groups.is_empty());
        assert!(f.authenticate("t").is_none());
        assert!(f.authenticate("t1 ").is_none());
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn a_short_record_names_the_file_and_line() {
        let err = parse("t1,alice,1\nt2,bob\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "token file 'tokens.csv' must have at least 3 columns (token, user name, user uid), found 2 (line 2)"
        );
    }

    #[test]
    fn empty_tokens_are_skipped_and_duplicates_keep_the_later_record() {
        let f = parse(",ghost,0\nt,first,1\nt,second,2\n").unwrap();
        assert_eq!(f.authenticate("t").unwrap().username, "second");
        assert_eq!(f.warnings.len(), 2);
        assert!(f.authenticate("").is_none());
    }

    #[test]
    fn bearer_headers_parse_like_kube_apiserver() {
        assert_eq!(bearer("Bearer abc"), Bearer::Token("abc"));
        assert_eq!(bearer("  bearer abc  "), Bearer::Token("abc"));
        assert_eq!(bearer("BEARER abc extra"), Bearer::Token("abc"));
        assert_eq!(
            bearer("Bearer  abc"),
            Bearer::Absent,
            "two spaces give an empty token"
        );
        assert_eq!(bearer("Basic abc"), Bearer::Absent);
        assert_eq!(bearer("Bearer"), Bearer::Absent);
        assert_eq!(bearer(""), Bearer::Absent);
        assert_eq!(
            bearer(&format!("Bearer {}", "x".repeat(MAX_TOKEN_BYTES + 1))),
            Bearer::TooLong
        );
    }
}
