//! Who may ask the query API what. Each audience has a bearer token of its own, configured
//! through the environment only (`RALLYPOINT__QUERY_API__TOKENS__CELL`,
//! `RALLYPOINT__QUERY_API__TOKENS__EST`, ...; see [`crate::config::QueryApiConfig`]):
//!
//! | audience               | `/api/v1/picture`, `/api/v1/campaigns` | `/api/v1/requests`                        |
//! |------------------------|----------------------------------------|-------------------------------------------|
//! | the coordination cell  | yes                                    | every nation's, as the cell may see them  |
//! | a nation               | 403                                    | `?nation=<its own>` only, in full         |
//! | no or a wrong token    | 401                                    | 401                                       |
//!
//! What "as the cell may see them" and "in full" mean is TLP 2.0, decided in one place:
//! [`rallypoint_core::tlp::visibility`] with [`Role::Cell`] or [`Role::Requester`].
//!
//! The picture and the campaigns are the cell's: they are what the coalition threat-picture
//! topic carries, they aggregate every nation's incidents, and a campaign names the nations
//! and incidents it links, so a nation could learn of another's incidents from them.

use rallypoint_core::tlp::Role;
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Who a token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// The coordination cell.
    Cell,
    /// A member nation, by its ISO 3166-1 alpha-3 code.
    Nation(String),
}

impl std::fmt::Display for Audience {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Audience::Cell => f.write_str("cell"),
            Audience::Nation(n) => f.write_str(n),
        }
    }
}

/// What an audience asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum View<'a> {
    Picture,
    Campaigns,
    /// Open requests, of one nation or (`None`) of all.
    Requests(Option<&'a str>),
}

/// Whether `audience` may see `view`, and with which role's redaction.
pub fn role_for(audience: &Audience, view: &View<'_>) -> Option<Role> {
    match (audience, view) {
        (Audience::Cell, _) => Some(Role::Cell),
        (Audience::Nation(own), View::Requests(Some(asked))) if own.as_str() == *asked => {
            Some(Role::Requester)
        }
        (Audience::Nation(_), _) => None,
    }
}

/// The configured tokens, kept as SHA-256 digests: a presented token is hashed and compared
/// with every digest in constant time, so neither its content nor its length shows in the
/// time an answer takes.
pub struct Tokens {
    digests: Vec<([u8; 32], Audience)>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.digests.iter().map(|(_, a)| a))
            .finish()
    }
}

fn digest(token: &[u8]) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, token);
    let mut out = [0; 32];
    out.copy_from_slice(d.as_ref());
    out
}

impl Tokens {
    pub fn new(tokens: &[(Audience, Secret)]) -> Self {
        Self {
            digests: tokens
                .iter()
                .filter(|(_, t)| !t.0.is_empty())
                .map(|(a, t)| (digest(t.0.as_bytes()), a.clone()))
                .collect(),
        }
    }

    /// The audience whose token `presented` is, if any.
    pub fn audience(&self, presented: &str) -> Option<&Audience> {
        let presented = digest(presented.as_bytes());
        let mut found = None;
        // Every digest is compared, matching or not.
        for (d, audience) in &self.digests {
            if bool::from(d.ct_eq(&presented)) {
                found = Some(audience);
            }
        }
        found
    }
}

/// The token of an `Authorization: Bearer <token>` header value.
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(&[
            (Audience::Cell, Secret("c".repeat(40))),
            (Audience::Nation("EST".into()), Secret("e".repeat(40))),
        ])
    }

    #[test]
    fn a_token_names_its_audience_and_no_other() {
        let t = tokens();
        assert_eq!(t.audience(&"c".repeat(40)), Some(&Audience::Cell));
        assert_eq!(
            t.audience(&"e".repeat(40)),
            Some(&Audience::Nation("EST".into()))
        );
        assert_eq!(t.audience(&"c".repeat(39)), None);
        assert_eq!(t.audience(""), None);
        assert!(!format!("{t:?}").contains("ccc"));
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_others_are_refused() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn a_nation_sees_only_its_own_requests_and_the_cell_sees_every_view() {
        let est = Audience::Nation("EST".into());
        assert_eq!(
            role_for(&est, &View::Requests(Some("EST"))),
            Some(Role::Requester)
        );
        assert_eq!(role_for(&est, &View::Requests(Some("LVA"))), None);
        assert_eq!(role_for(&est, &View::Requests(None)), None);
        assert_eq!(role_for(&est, &View::Picture), None);
        assert_eq!(role_for(&est, &View::Campaigns), None);
        for view in [
            View::Picture,
            View::Campaigns,
            View::Requests(None),
            View::Requests(Some("EST")),
        ] {
            assert_eq!(role_for(&Audience::Cell, &view), Some(Role::Cell));
        }
    }
}
