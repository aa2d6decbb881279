//! AWS Signature Version 4, verified: the canonical request is rebuilt from what the
//! client says it signed, and the key is derived from the scope it signed with (boto2
//! signs for the host it was given, `…/0/127/aws4_request` for 127.0.0.1), never from a
//! region of overcast's choosing.

use axum::http::HeaderMap;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

/// How far a request's time may be from the server's.
const WINDOW: Duration = Duration::minutes(15);

/// What a request is made of, as received.
pub struct Received<'a> {
    pub method: &'a str,
    /// The path as sent, still percent-encoded.
    pub path: &'a str,
    /// The query as sent, still percent-encoded; empty when there is none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// The `Authorization` header of a SigV4 request.
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    pub access_key_id: String,
    /// `YYYYMMDD`.
    pub date: String,
    pub region: String,
    pub service: String,
    pub signed_headers: Vec<String>,
    pub signature: String,
    /// The request's `X-Amz-Date`, once [`credential`] has read it.
    pub amz_date: String,
}

/// Why a request's signature is not accepted.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No signature at all.
    Missing,
    /// A Signature Version 2 request.
    Version2,
    /// The header or a signed part of the request is malformed: what is wrong.
    Malformed(String),
    /// The request's time is outside the window: the time it gave.
    Expired(String),
    /// The signature does not match.
    Mismatch,
}

/// The credential a request was signed with, its time checked to be within the window
/// around `now`; its signature is checked by [`check`] once the key's secret is known.
pub fn credential(request: &Received<'_>, now: OffsetDateTime) -> Result<Credential, Refusal> {
    let header = match request.headers.get("authorization") {
        Some(value) => value
            .to_str()
            .map_err(|_| Refusal::Malformed("the Authorization header is not text".into()))?,
        None if is_version_2(request) => return Err(Refusal::Version2),
        None => return Err(Refusal::Missing),
    };
    let mut credential = parse_authorization(header)?;
    let amz_date = header_text(request.headers, "x-amz-date")
        .ok_or_else(|| Refusal::Malformed("X-Amz-Date is missing".into()))?;
    let at = parse_amz_date(&amz_date)?;
    if !amz_date.starts_with(&credential.date) {
        return Err(Refusal::Malformed(format!(
            "the credential's date {} is not the request's date {amz_date}",
            credential.date
        )));
    }
    if (at - now).abs() > WINDOW {
        return Err(Refusal::Expired(amz_date));
    }
    credential.amz_date = amz_date;
    Ok(credential)
}

/// Checks a request's signature with the secret of its access key, the key derived from
/// the scope the client signed with; the comparison takes the same time whatever differs.
pub fn check(request: &Received<'_>, credential: &Credential, secret: &str) -> Result<(), Refusal> {
    let canonical = canonical_request(request, &credential.signed_headers)?;
    let scope = format!(
        "{}/{}/{}/aws4_request",
        credential.date, credential.region, credential.service
    );
    let to_sign = string_to_sign(&credential.amz_date, &scope, &canonical);
    let key = signing_key(
        secret,
        &credential.date,
        &credential.region,
        &credential.service,
    );
    let expected = hex::encode(hmac(&key, to_sign.as_bytes()));
    if bool::from(expected.as_bytes().ct_eq(credential.signature.as_bytes())) {
        Ok(())
    } else {
        Err(Refusal::Mismatch)
    }
}

/// Whether a request without an `Authorization` header carries a Version 2 signature.
fn is_version_2(request: &Received<'_>) -> bool {
    let in_query = |name: &str| {
        form_urlencoded::parse(request.query.as_bytes()).any(|(k, _)| k == name)
            || form_urlencoded::parse(request.body).any(|(k, _)| k == name)
    };
    in_query("SignatureVersion") || in_query("AWSAccessKeyId")
}

/// Parses `AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
/// SignedHeaders=a;b, Signature=hex`; boto2 puts no space after the commas.
fn parse_authorization(header: &str) -> Result<Credential, Refusal> {
    let rest = header
        .strip_prefix("AWS4-HMAC-SHA256")
        .ok_or_else(|| {
            if header.starts_with("AWS ") {
                Refusal::Version2
            } else {
                Refusal::Malformed("the Authorization header is not AWS4-HMAC-SHA256".into())
            }
        })?
        .trim();
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing =
        |what: &str| Refusal::Malformed(format!("the Authorization header has no {what}"));
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers.ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature.ok_or_else(|| missing("Signature"))?;
    let scope: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = scope[..] else {
        return Err(Refusal::Malformed(format!(
            "the credential `{credential}` is not KEY/DATE/REGION/SERVICE/aws4_request"
        )));
    };
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Refusal::Malformed(format!(
            "the credential's date `{date}` is not YYYYMMDD"
        )));
    }
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_string).collect();
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(Refusal::Malformed("the Host header must be signed".into()));
    }
    Ok(Credential {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature: signature.to_ascii_lowercase(),
        amz_date: String::new(),
    })
}

fn parse_amz_date(value: &str) -> Result<OffsetDateTime, Refusal> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(value, format)
        .map(PrimitiveDateTime::assume_utc)
        .map_err(|_| Refusal::Malformed(format!("X-Amz-Date `{value}` is not YYYYMMDDTHHMMSSZ")))
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| {
        values
            .iter()
            .map(|v| v.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect::<Vec<_>>()
            .join(",")
    })
}

/// The canonical request: method, path, sorted query, the signed headers' values
/// (trimmed, runs of spaces collapsed, repeated ones joined by commas), their names and
/// the payload's hash.
fn canonical_request(request: &Received<'_>, signed_headers: &[String]) -> Result<String, Refusal> {
    let mut headers = String::new();
    for name in signed_headers {
        let value = header_text(request.headers, name).ok_or_else(|| {
            Refusal::Malformed(format!("the signed header `{name}` is not in the request"))
        })?;
        headers.push_str(&format!("{name}:{value}\n"));
    }
    let payload = header_text(request.headers, "x-amz-content-sha256")
        .unwrap_or_else(|| hex::encode(Sha256::digest(request.body)));
    Ok(format!(
        "{}\n{}\n{}\n{headers}\n{}\n{payload}",
        request.method,
        canonical_path(request.path),
        canonical_query(request.query),
        signed_headers.join(";"),
    ))
}

/// Each segment of the path as sent, encoded once more (for every service but S3).
fn canonical_path(path: &str) -> String {
    if path.is_empty() {
        return "/".into();
    }
    path.split('/')
        .map(|segment| encode(segment.as_bytes()))
        .collect::<Vec<_>>()
        .join("/")
}

/// The query's pairs, decoded, encoded as SigV4 wants and sorted.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(&decode(k)), encode(&decode(v)))
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn decode(text: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(text).collect()
}

/// RFC 3986 encoding: everything but unreserved characters.
fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// The key for one day, region and service, derived from the secret.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> Vec<u8> {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any size");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    //! Four cases of AWS's SigV4 test suite (Apache-2.0, as shipped in the `aws-sigv4`
    //! crate's `aws-signing-test-suite/v4`): the secret, time and scope are theirs, and so
    //! are the signatures.

    use super::*;
    use axum::http::{HeaderName, HeaderValue};

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SCOPE: &str = "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request";

    fn at() -> OffsetDateTime {
        time::macros::datetime!(2015-08-30 12:36:00 UTC)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn signed_case(
        method: &str,
        query: &str,
        pairs: Vec<(&str, &str)>,
        body: &[u8],
        signed: &str,
        signature: &str,
    ) -> Result<Credential, Refusal> {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders={signed}, Signature={signature}"
        );
        let mut all = pairs;
        all.push(("X-Amz-Date", "20150830T123600Z"));
        all.push(("Authorization", authorization.as_str()));
        let headers = headers(&all);
        let request = Received {
            method,
            path: "/",
            query,
            headers: &headers,
            body,
        };
        let credential = credential(&request, at())?;
        assert_eq!(credential.access_key_id, "AKIDEXAMPLE");
        check(&request, &credential, SECRET).map(|()| credential)
    }

    #[test]
    fn get_vanilla_query_order_key_case() {
        let signature = "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
        let host = vec![("Host", "example.amazonaws.com")];
        let ok = signed_case(
            "GET",
            "Param2=value2&Param1=value1",
            host.clone(),
            b"",
            "host;x-amz-date",
            signature,
        );
        assert_eq!(ok.unwrap().region, "us-east-1");
        // Another value, another signature.
        assert_eq!(
            signed_case(
                "GET",
                "Param2=value3&Param1=value1",
                host,
                b"",
                "host;x-amz-date",
                signature
            ),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn post_header_key_sort() {
        let signature = "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c";
        let pairs = vec![("Host", "example.amazonaws.com"), ("My-Header1", "value1")];
        assert!(signed_case(
            "POST",
            "",
            pairs,
            b"",
            "host;my-header1;x-amz-date",
            signature
        )
        .is_ok());
    }

    #[test]
    fn get_header_value_trim() {
        let signature = "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736";
        let pairs = vec![
            ("Host", "example.amazonaws.com"),
            ("My-Header1", " value1"),
            ("My-Header2", "\"a   b   c\""),
        ];
        let signed = "host;my-header1;my-header2;x-amz-date";
        assert!(signed_case("GET", "", pairs, b"", signed, signature).is_ok());
    }

    #[test]
    fn post_x_www_form_urlencoded() {
        let signature = "d3875051da38690788ef43de4db0d8f280229d82040bfac253562e56c3f20e0b";
        let body = b"Param1=value1";
        let hash = hex::encode(Sha256::digest(body));
        let pairs = vec![
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Host", "example.amazonaws.com"),
            ("Content-Length", "13"),
            ("X-Amz-Content-Sha256", hash.as_str()),
        ];
        let signed = "content-length;content-type;host;x-amz-content-sha256;x-amz-date";
        assert!(signed_case("POST", "", pairs.clone(), body, signed, signature).is_ok());
        // The body is what was signed: another one is refused, whatever the header says.
        let mut tampered = pairs;
        let other = hex::encode(Sha256::digest(b"Param1=value2"));
        tampered[3] = ("X-Amz-Content-Sha256", other.as_str());
        assert_eq!(
            signed_case("POST", "", tampered, b"Param1=value2", signed, signature),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn boto2s_header_without_spaces_and_its_host_scope_parse() {
        let header = "AWS4-HMAC-SHA256 Credential=AKID/20261129/0/127/aws4_request,SignedHeaders=host;x-amz-date,Signature=ABCDEF";
        let credential = parse_authorization(header).unwrap();
        assert_eq!(
            (credential.region.as_str(), credential.service.as_str()),
            ("0", "127")
        );
        assert_eq!(credential.signed_headers, ["host", "x-amz-date"]);
        assert_eq!(credential.signature, "abcdef");
    }

    #[test]
    fn stale_unsigned_wrongly_signed_and_version_2_requests_are_refused() {
        let signature = "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500";
        let host = vec![("Host", "example.amazonaws.com")];
        let headers_only = headers(&[("Host", "example.amazonaws.com")]);
        let late = at() + Duration::minutes(16);
        let query = "Param2=value2&Param1=value1";
        let authorization = format!("AWS4-HMAC-SHA256 Credential={SCOPE}, SignedHeaders=host;x-amz-date, Signature={signature}");
        let signed = headers(&[
            ("Host", "example.amazonaws.com"),
            ("X-Amz-Date", "20150830T123600Z"),
            ("Authorization", &authorization),
        ]);
        let request = |headers, query, body| Received {
            method: "GET",
            path: "/",
            query,
            headers,
            body,
        };
        assert_eq!(
            credential(&request(&signed, query, b""), late),
            Err(Refusal::Expired("20150830T123600Z".into()))
        );
        let good = credential(&request(&signed, query, b""), at()).unwrap();
        assert_eq!(
            check(&request(&signed, query, b""), &good, "another secret"),
            Err(Refusal::Mismatch)
        );
        assert_eq!(
            credential(&request(&headers_only, query, b""), at()),
            Err(Refusal::Missing)
        );
        let v2 = b"Action=DescribeInstances&SignatureVersion=2&AWSAccessKeyId=AKID";
        assert_eq!(
            credential(&request(&headers_only, "", v2), at()),
            Err(Refusal::Version2)
        );
        // A header naming a signed header the request lacks says which.
        let missing = signed_case(
            "GET",
            query,
            host,
            b"",
            "host;my-header9;x-amz-date",
            signature,
        );
        assert!(
            matches!(&missing, Err(Refusal::Malformed(m)) if m.contains("my-header9")),
            "{missing:?}"
        );
    }

    /// A request as a real client signed it (recorded against a capturing server, with
    /// AWS's example secret): its headers, body and time.
    fn recorded(pairs: &[(&str, &str)], body: &[u8], at: OffsetDateTime) -> Result<(), Refusal> {
        let headers = headers(pairs);
        let request = Received {
            method: "POST",
            path: "/",
            query: "",
            headers: &headers,
            body,
        };
        let credential = credential(&request, at)?;
        check(&request, &credential, SECRET)
    }

    #[test]
    fn boto2_signs_for_the_hosts_name_without_spaces_and_verifies() {
        let pairs = [
            ("Accept-Encoding", "identity"),
            // Not signed, so not part of the check.
            ("User-Agent", "Boto/2.49.0 Python/3.11.7 Linux"),
            ("X-Amz-Date", "20261130T100329Z"),
            ("Content-Type", "application/x-www-form-urlencoded; charset=UTF-8"),
            ("Content-Length", "76"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/0/127/aws4_request,SignedHeaders=host;x-amz-date,Signature=685ede3155bb2e2708444fcbf9a42c6010db2f15dba6a7ceae51746425532244"),
            ("Host", "127.0.0.1:18977"),
        ];
        let body = b"Action=DescribeInstances&InstanceId.1=i-0123456789abcdef0&Version=2014-10-01";
        let at = time::macros::datetime!(2026-11-30 10:03:29 UTC);
        assert_eq!(recorded(&pairs, body, at), Ok(()));
        let other =
            b"Action=TerminateInstances&InstanceId.1=i-0123456789abcdef0&Version=2014-10-01";
        assert_eq!(recorded(&pairs, other, at), Err(Refusal::Mismatch));
    }

    #[test]
    fn terraforms_six_signed_headers_for_sts_verify() {
        let pairs = [
            ("Host", "127.0.0.1:18977"),
            ("User-Agent", "APN/1.0 HashiCorp/1.0 Terraform/1.11.4 (+https://www.terraform.io) terraform-provider-aws/5.100.0 (+https://registry.terraform.io/providers/hashicorp/aws) aws-sdk-go-v2/1.36.3 ua/2.1 os/linux lang/go#1.23.10 md/GOOS#linux md/GOARCH#amd64 api/sts#1.33.20 m/g"),
            ("Content-Length", "43"),
            ("Amz-Sdk-Invocation-Id", "285c5f92-b13f-4b01-9a38-e8c40d2699aa"),
            ("Amz-Sdk-Request", "attempt=1; max=25"),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261130/us-east-1/sts/aws4_request, SignedHeaders=amz-sdk-invocation-id;amz-sdk-request;content-length;content-type;host;x-amz-date, Signature=72dee7196e32a1618a80ac4f4109d377c875efd628f49c6c0e55d62e32adede0"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-Amz-Date", "20261130T100334Z"),
            ("Accept-Encoding", "gzip"),
        ];
        let body = b"Action=GetCallerIdentity&Version=2011-06-15";
        let at = time::macros::datetime!(2026-11-30 10:03:34 UTC);
        assert_eq!(recorded(&pairs, body, at), Ok(()));
        // A retry is signed anew: the same signature with another attempt header fails.
        let mut retried = pairs;
        retried[4] = ("Amz-Sdk-Request", "attempt=2; max=25");
        assert_eq!(recorded(&retried, body, at), Err(Refusal::Mismatch));
    }
}
