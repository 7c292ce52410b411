//! Forged JOSE headers and signatures on a bearer route: every trick JWT libraries have fallen
//! for, with claims that are otherwise perfect (right issuer, audience, times), so only the trick
//! is judged. Each must be refused with 401 `invalid_token`, the backend never reached — and the
//! attacker's key server, named by `jku`/`x5u`, must never be asked anything.

use serde_json::{Value, json};

use super::Verdicts;
use crate::bearer::{
    API_ROUTE, Stack, b64, claims, compact, mint, pem, signing_input, signing_key,
};
use crate::support::EchoBackend;
use crate::support::idp::{IdpOptions, key_file};

/// The public JWK of `rsa-2`: a key the attacker holds (the provider does not publish it).
fn attacker_jwk() -> Value {
    let text = std::fs::read_to_string(key_file("rotated.json")).expect("reading rotated.json");
    let set: Value = serde_json::from_str(&text).expect("rotated.json is JSON");
    let key = set["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .find(|k| k["kid"] == "rsa-2")
        .expect("rsa-2 in rotated.json")
        .clone();
    json!({"kty": "RSA", "n": key["n"], "e": key["e"], "kid": "rsa-2"})
}

/// `input` signed with HMAC-SHA-* under `secret`: the key-confusion forgery.
fn hmac(alg: jsonwebtoken::Algorithm, header: &Value, claims: &Value, secret: &[u8]) -> String {
    compact(
        header,
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
        alg,
    )
}

/// A header-and-claims token with a raw signature (base64url of `signature`).
fn with_signature(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!("{}.{}", signing_input(header, claims), b64(signature))
}

/// A token whose header is `header_json` verbatim (for duplicate keys), signed by rsa-1.
fn raw_header_rs256(header_json: &str, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header_json.as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let (key, alg) = signing_key("rsa-1");
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, alg).expect("signing a test token");
    format!("{input}.{signature}")
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex"))
        .collect()
}

const CVE_2015_9235: &str = "jsonwebtoken CVE-2015-9235 (HS/RS algorithm confusion; auth0 'Critical vulnerabilities in JSON Web Token libraries', 2015)";
const NONE: &str =
    "jsonwebtoken CVE-2022-23540 (GHSA-qwph-4952-7xr6, alg none by default); F21 JWT CVE-2015-2951";
const JKU: &str = "PyJWT GHSA-993g-76c3-p5m4 / CVE-2026-48522 (jku-style key URLs fetched); PortSwigger Web Security Academy 'JWT authentication bypass via jku header injection'";
const EMBEDDED: &str =
    "node-jose CVE-2018-0114 (GHSA-jfxm-w8g2-4rcv, key embedded in the jwk header trusted)";
const KID: &str = "PortSwigger Web Security Academy 'JWT authentication bypass via kid header path traversal'; WebGoat JWT kid SQL injection lesson";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_forged_jose_header_opens_a_bearer_route() {
    let stack = Stack::start(IdpOptions::default(), "", API_ROUTE).await;
    let attacker = EchoBackend::start("attacker").await;
    let jku = format!("http://{}/.well-known/jwks.json", attacker.addr());
    let x5u = format!("http://{}/cert.pem", attacker.addr());
    let good = || claims(stack.idp.issuer(), "forger");
    let (rsa1, rs256) = signing_key("rsa-1");
    let (rsa2, _) = signing_key("rsa-2");
    let (ec1, es256) = signing_key("ec-1");
    let rs = |extra: Value| {
        let mut header = json!({"alg": "RS256", "typ": "at+jwt", "kid": "rsa-1"});
        for (k, v) in extra.as_object().expect("an object") {
            if v.is_null() {
                header.as_object_mut().expect("an object").remove(k);
            } else {
                header[k.as_str()] = v.clone();
            }
        }
        header
    };

    // The control: a correctly signed token with the same claims passes.
    let valid = mint("rsa-1", &good());
    stack.allowed("the control token", "/api/x", &valid).await;

    let rsa1_public = pem("rsa-1.pub.pem");
    let p256_order = hex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551");
    let es_header = json!({"alg": "ES256", "typ": "at+jwt", "kid": "ec-1"});
    let other_signature = valid.rsplit_once('.').expect("three parts").1.to_string();
    let jwe = "eyJhbGciOiJSU0EtT0FFUC0yNTYiLCJlbmMiOiJBMjU2R0NNIiwia2lkIjoicnNhLTEifQ.\
               ZW5jcnlwdGVkLWtleQ.aXYtaXYtaXYtaXY.Y2lwaGVydGV4dA.dGFn";

    #[rustfmt::skip]
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none, empty signature", format!("{}.", signing_input(&json!({"alg": "none", "typ": "JWT"}), &good())), NONE),
        ("alg None (capitalised)", format!("{}.", signing_input(&json!({"alg": "None"}), &good())), NONE),
        ("alg NONE", format!("{}.", signing_input(&json!({"alg": "NONE"}), &good())), NONE),
        ("alg nOnE", format!("{}.", signing_input(&json!({"alg": "nOnE"}), &good())), NONE),
        ("alg none with a real token's signature", format!("{}.{other_signature}", signing_input(&json!({"alg": "none"}), &good())), NONE),
        ("alg RS256 with the signature stripped", format!("{}.", signing_input(&rs(json!({})), &good())), NONE),
        ("HS256 keyed with the RSA public key (PEM)", hmac(jsonwebtoken::Algorithm::HS256, &rs(json!({"alg": "HS256"})), &good(), &rsa1_public), CVE_2015_9235),
        ("HS384 keyed with the RSA public key", hmac(jsonwebtoken::Algorithm::HS384, &rs(json!({"alg": "HS384"})), &good(), &rsa1_public), "jwt-simple CVE-2016-10555 (algorithm not enforced)"),
        ("HS512 keyed with the RSA public key, no kid", hmac(jsonwebtoken::Algorithm::HS512, &json!({"alg": "HS512"}), &good(), &rsa1_public), "fast-jwt CVE-2023-48223 (GHSA-c2ff-88x2-x9pg, algorithm confusion)"),
        ("HS256 keyed with the RSA modulus of the JWKS", hmac(jsonwebtoken::Algorithm::HS256, &rs(json!({"alg": "HS256"})), &good(), attacker_jwk()["n"].as_str().expect("n").as_bytes()), "cjwt CVE-2024-54150 (GHSA-9h24-7qp5-gp82, algorithm confusion)"),
        ("jku naming the attacker's key set, unknown kid", compact(&rs(json!({"kid": "attacker-key", "jku": jku})), &good(), &rsa2, rs256), JKU),
        ("jku naming the attacker's key set, kid rsa-1", compact(&rs(json!({"jku": jku})), &good(), &rsa2, rs256), JKU),
        ("x5u naming the attacker's certificate", compact(&rs(json!({"kid": "attacker-key", "x5u": x5u})), &good(), &rsa2, rs256), "RFC 7515 §4.1.5 (x5u); PortSwigger Web Security Academy 'JWT attacks' (x5u injection)"),
        ("embedded jwk of the attacker's key, no kid", compact(&rs(json!({"kid": null, "jwk": attacker_jwk()})), &good(), &rsa2, rs256), EMBEDDED),
        ("embedded jwk of the attacker's key, kid rsa-1", compact(&rs(json!({"jwk": attacker_jwk()})), &good(), &rsa2, rs256), EMBEDDED),
        ("embedded x5c chain, kid rsa-1", compact(&rs(json!({"x5c": ["MIIBattackerCertificate"]})), &good(), &rsa2, rs256), EMBEDDED),
        ("crit naming an extension", compact(&rs(json!({"crit": ["urn:example:ext"], "urn:example:ext": true})), &good(), &rsa1, rs256), "RFC 7515 §4.1.11 (crit must be understood or refused)"),
        ("b64 false under crit (RFC 7797)", compact(&rs(json!({"crit": ["b64"], "b64": false})), &good(), &rsa1, rs256), "RFC 7797 §3 (unencoded payload changes what is signed)"),
        ("kid path traversal to /dev/null, HMAC with an empty key", hmac(jsonwebtoken::Algorithm::HS256, &json!({"alg": "HS256", "kid": "../../../../../../dev/null"}), &good(), b""), KID),
        ("kid path traversal, RS256 by the attacker", compact(&rs(json!({"kid": "../../../../../../dev/null"})), &good(), &rsa2, rs256), KID),
        ("kid SQL injection", compact(&rs(json!({"kid": "' OR '1'='1"})), &good(), &rsa2, rs256), KID),
        ("kid SQL injection with UNION", compact(&rs(json!({"kid": "x' UNION SELECT 'secret' --"})), &good(), &rsa2, rs256), KID),
        ("kid of 300 characters", compact(&rs(json!({"kid": "k".repeat(300)})), &good(), &rsa2, rs256), KID),
        ("kid of 8000 characters", compact(&rs(json!({"kid": "k".repeat(8000)})), &good(), &rsa2, rs256), KID),
        ("kid as a number", compact(&rs(json!({"kid": 1})), &good(), &rsa1, rs256), "dariusztytko/jwt-key-id-injector ('kid': 0 indexing the secret)"),
        ("kid as an object", compact(&rs(json!({"kid": {"$ne": ""}})), &good(), &rsa1, rs256), KID),
        ("kid naming the EC key for an RS256 token", compact(&rs(json!({"kid": "ec-1"})), &good(), &rsa1, rs256), "jsonwebtoken CVE-2022-23539 (key type not matched to the algorithm)"),
        ("typ JWE", compact(&rs(json!({"typ": "JWE"})), &good(), &rsa1, rs256), "RFC 8725 §3.11 (explicit typing); jwcrypto CVE-2022-3102 (token type confusion)"),
        ("typ JOSE+JSON", compact(&rs(json!({"typ": "JOSE+JSON"})), &good(), &rsa1, rs256), "RFC 8725 §3.11 (explicit typing)"),
        ("a compact JWE in place of a JWS", jwe.to_string(), "jwcrypto CVE-2022-3102 (JWS/JWE type confusion)"),
        ("psychic signature r = s = 0", with_signature(&es_header, &good(), &[0u8; 64]), "Java CVE-2022-21449 ('Psychic Signatures')"),
        ("psychic signature r = s = n", with_signature(&es_header, &good(), &[p256_order.clone(), p256_order].concat()), "Java CVE-2022-21449 ('Psychic Signatures'; Node.js test vectors)"),
        ("ES256 signature truncated to 32 bytes", { let t = compact(&es_header, &good(), &ec1, es256); let sig = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, t.rsplit_once('.').expect("parts").1).expect("b64"); with_signature(&es_header, &good(), &sig[..32]) }, "starkbank-ecdsa CVE-2021-43570 (signature not checked for shape)"),
        ("duplicate alg keys, none first", raw_header_rs256(r#"{"alg":"none","alg":"RS256","kid":"rsa-1"}"#, &good()), "Bishop Fox research 'An Exploration of JSON Interoperability Vulnerabilities' (2021): duplicate keys"),
        ("duplicate kid keys", raw_header_rs256(r#"{"alg":"RS256","kid":"attacker","kid":"rsa-1"}"#, &good()), "Bishop Fox research 'An Exploration of JSON Interoperability Vulnerabilities' (2021): duplicate keys"),
        ("alg in lower case rs256", compact(&rs(json!({"alg": "rs256"})), &good(), &rsa1, rs256), "RFC 7515 §4.1.1 (alg is case-sensitive)"),
        ("a real signature transplanted onto forged claims", format!("{}.{other_signature}", signing_input(&rs(json!({})), &claims(stack.idp.issuer(), "admin"))), "reason-jose CVE-2023-23928 (signature checks ignored)"),
        ("header that is not an object", format!("{}.{}.{}", b64(b"[\"RS256\"]"), b64(good().to_string().as_bytes()), other_signature), "RFC 7515 §4 (the header is a JSON object)"),
        ("padded base64 parts", format!("{}=.{}", valid.split('.').next().expect("a header"), valid.split_once('.').expect("parts").1), "RFC 7515 §2 (base64url without padding)"),
    ];

    let mut verdicts = Verdicts::new("jwt_header");
    for (name, token, source) in cases {
        let before = stack.backend.count();
        let response = stack.get_with("/api/x", &token).await;
        let challenge = response.header("www-authenticate").unwrap_or_default();
        eprintln!(
            "jwt_header: {name:<55} -> {} {}",
            response.status,
            challenge
                .split("error_description=")
                .nth(1)
                .unwrap_or(challenge)
        );
        let verdict = if stack.backend.count() != before {
            Err(format!(
                "the backend was reached (status {})",
                response.status
            ))
        } else if response.status != 401 || !challenge.contains("invalid_token") {
            Err(format!(
                "want 401 invalid_token, got {} {challenge:?} {}",
                response.status,
                response.text()
            ))
        } else {
            Ok(())
        };
        verdicts.record(name, source, verdict);
    }
    verdicts.record(
        "the attacker's jku/x5u server was never asked",
        JKU,
        if attacker.count() == 0 {
            Ok(())
        } else {
            Err(format!(
                "{} request(s) reached the attacker: {:?}",
                attacker.count(),
                attacker
                    .seen()
                    .iter()
                    .map(|s| s.path.clone())
                    .collect::<Vec<_>>()
            ))
        },
    );
    verdicts.finish();
}
