//! `WWW-Authenticate` challenges (RFC 7235): the scheme a registry asks for and its
//! parameters, e.g. `Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull"`.

use std::collections::BTreeMap;

/// One challenge: its scheme and its parameters, keys in lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    /// Whether this challenge is of `scheme`, which HTTP compares without case.
    pub fn is(&self, scheme: &str) -> bool {
        self.scheme.eq_ignore_ascii_case(scheme)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Every challenge in one header value. A header may carry several, separated by commas
/// like their parameters: a token followed by `=` is a parameter, any other starts the next
/// challenge. What cannot be read ends the list.
pub fn parse_challenges(header: &str) -> Vec<Challenge> {
    let mut reader = Reader {
        text: header.as_bytes(),
        at: 0,
    };
    let mut challenges = Vec::new();
    loop {
        reader.skip(|b| b == b',' || is_space(b));
        let Some(scheme) = reader.token() else {
            break;
        };
        let mut challenge = Challenge {
            scheme,
            params: BTreeMap::new(),
        };
        loop {
            reader.skip(|b| b == b',' || is_space(b));
            let start = reader.at;
            let Some(name) = reader.token() else {
                break;
            };
            reader.skip(is_space);
            if !reader.eat(b'=') {
                // The next challenge's scheme (or a token68, which no registry sends).
                reader.at = start;
                break;
            }
            reader.skip(is_space);
            let value = if reader.peek() == Some(b'"') {
                reader.quoted()
            } else {
                reader.token()
            };
            let Some(value) = value else {
                challenges.push(challenge);
                return challenges;
            };
            challenge.params.insert(name.to_ascii_lowercase(), value);
        }
        challenges.push(challenge);
    }
    challenges
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// RFC 7230's `tchar`.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

struct Reader<'a> {
    text: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        if found {
            self.at += 1;
        }
        found
    }

    fn skip(&mut self, what: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&what) {
            self.at += 1;
        }
    }

    /// A token: one or more `tchar`s (token68's `/` and `=` padding are not read).
    fn token(&mut self) -> Option<String> {
        let start = self.at;
        self.skip(is_token);
        (self.at > start).then(|| String::from_utf8_lossy(&self.text[start..self.at]).into_owned())
    }

    /// A quoted string without its quotes, backslash escapes undone; `None` if unterminated.
    fn quoted(&mut self) -> Option<String> {
        self.eat(b'"');
        let mut value = Vec::new();
        loop {
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(String::from_utf8_lossy(&value).into_owned());
                }
                b'\\' => {
                    self.at += 1;
                    value.push(self.peek()?);
                    self.at += 1;
                }
                b => {
                    value.push(b);
                    self.at += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(challenge: &Challenge) -> Vec<(&str, &str)> {
        challenge
            .params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn docker_hubs_bearer_challenge() {
        let found = parse_challenges(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(found.len(), 1);
        assert!(found[0].is("bearer"));
        assert_eq!(
            params(&found[0]),
            [
                ("realm", "https://auth.docker.io/token"),
                ("scope", "repository:library/nginx:pull"),
                ("service", "registry.docker.io")
            ]
        );
    }

    #[test]
    fn quoted_commas_escapes_spaces_and_case() {
        let found = parse_challenges(
            r#"bearer Realm = "http://127.0.0.1:1/token" , scope="repository:a:pull,push", error=insufficient_scope, note="say \"hi\"""#,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].param("realm"), Some("http://127.0.0.1:1/token"));
        assert_eq!(found[0].param("scope"), Some("repository:a:pull,push"));
        assert_eq!(found[0].param("error"), Some("insufficient_scope"));
        assert_eq!(found[0].param("note"), Some(r#"say "hi""#));
    }

    #[test]
    fn several_challenges_in_one_header() {
        let found = parse_challenges(
            r#"Basic realm="basic-realm", Bearer realm="https://a/token",service="s""#,
        );
        assert_eq!(found.len(), 2);
        assert!(found[0].is("Basic"));
        assert_eq!(found[0].param("realm"), Some("basic-realm"));
        assert!(found[1].is("Bearer"));
        assert_eq!(
            params(&found[1]),
            [("realm", "https://a/token"), ("service", "s")]
        );
        let bare = parse_challenges("Negotiate, Basic");
        assert_eq!(bare.len(), 2);
        assert!(bare[1].is("basic") && bare[1].params.is_empty());
    }

    #[test]
    fn what_cannot_be_read_ends_the_list() {
        assert!(parse_challenges("").is_empty());
        assert!(parse_challenges("  ,  ").is_empty());
        let cut = parse_challenges(r#"Bearer realm="https://a/token",service="unterminated"#);
        assert_eq!(cut.len(), 1);
        assert_eq!(params(&cut[0]), [("realm", "https://a/token")]);
    }
}
