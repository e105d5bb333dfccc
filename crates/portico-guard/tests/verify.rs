//! Verification that cannot be configured wrong: every claim and header rule, attacked.

use portico_guard::testing::{TestIssuer, TestKey};
use portico_guard::{ManualClock, Reason, Refusal};
use serde_json::json;

const ISS: &str = "https://id.example.test";
const CRM: &str = "https://crm.example.test";

fn refused(r: Result<portico_guard::Principal, Refusal>) -> Reason {
    match r {
        Err(Refusal::Unauthorized(reason)) => reason,
        other => panic!("expected a 401, got {other:?}"),
    }
}

#[tokio::test]
async fn a_portico_shaped_token_gives_the_typed_principal() {
    let issuer = TestIssuer::new(ISS);
    let guard = issuer.guard(CRM).await;
    let mut c = issuer.claims("usr_ada", CRM);
    c.org_id = Some("ten_acme".into());
    c.roles = vec!["editor".into()];
    c.permissions = vec!["read:contacts".into(), "write:contacts".into()];
    c.scope = "openid profile".into();
    c.amr = Some(vec!["pwd".into(), "otp".into()]);
    let p = guard.verify(&issuer.sign(&c)).await.unwrap();
    assert_eq!(
        (p.sub.as_str(), p.client_id.as_str(), p.tenant.as_deref()),
        ("usr_ada", "test-client", Some("ten_acme"))
    );
    assert_eq!(p.scopes, ["openid", "profile"]);
    assert_eq!(p.amr, ["pwd", "otp"]);
    assert_eq!(p.sid, c.sid);
    assert!(p.has_permission("write:contacts") && !p.has_permission("delete:contacts"));
    assert_eq!(p.claims(), &c);
}

#[tokio::test]
async fn only_access_tokens_are_accepted_by_typ() {
    let issuer = TestIssuer::new(ISS);
    let guard = issuer.guard(CRM).await;
    let c = issuer.claims("usr_ada", CRM);
    // An ID token and a logout token are signed by the same key; neither is an access token.
    for typ in ["JWT", "logout+jwt", "id_token+jwt", "at+jwt2"] {
        assert_eq!(refused(guard.verify(&issuer.key.sign(typ, &c)).await), Reason::Type, "{typ}");
    }
    let untyped = issuer.key.sign_with_header(&json!({"alg": "EdDSA", "kid": issuer.key.kid}), &c);
    assert_eq!(refused(guard.verify(&untyped).await), Reason::Type);
    // RFC 7515 §4.1.9: the media type compares case-insensitively, `application/` optional.
    assert!(guard.verify(&issuer.key.sign("application/AT+JWT", &c)).await.is_ok());
    let logout = issuer.sign_logout(&issuer.logout_claims("crm-web", Some("s"), Some("usr_ada")));
    assert_eq!(refused(guard.verify(&logout).await), Reason::Type);
}

#[tokio::test]
async fn none_hmac_and_mismatched_algorithms_are_refused() {
    let issuer = TestIssuer::new(ISS);
    // Every algorithm the guard verifies is allowed here, so the key's own type must refuse.
    let guard = portico_guard::Guard::builder(ISS, CRM).key_source(issuer.keys.clone()).connect().await.unwrap();
    let c = issuer.claims("usr_ada", CRM);
    let kid = issuer.key.kid.clone();
    let with = |alg: &str| issuer.key.sign_with_header(&json!({"alg": alg, "typ": "at+jwt", "kid": kid}), &c);
    for alg in ["none", "HS256", "HS512"] {
        let r = refused(guard.verify(&with(alg)).await);
        assert!(matches!(r, Reason::Algorithm | Reason::Malformed), "{alg}: {r:?}");
    }
    // The Ed25519 key does not admit ES256 or RS256, whatever the header says.
    for alg in ["ES256", "RS256", "PS256"] {
        assert_eq!(refused(guard.verify(&with(alg)).await), Reason::Algorithm, "{alg}");
    }
    // A `crit` header extension the guard does not understand.
    let crit = issuer
        .key
        .sign_with_header(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": ["exp"]}), &c);
    assert_eq!(refused(guard.verify(&crit).await), Reason::Algorithm);
    // An allow-list narrowed to ES256 refuses even a valid EdDSA token... and cannot be built
    // over a key set with no ES256 key.
    assert!(issuer.builder(CRM).algorithms(&[portico_guard::Algorithm::ES256]).connect().await.is_err());
}

#[tokio::test]
async fn aud_must_be_exactly_this_product() {
    let issuer = TestIssuer::new(ISS);
    let guard = issuer.guard(CRM).await;
    let c = serde_json::to_value(issuer.claims("usr_ada", CRM)).unwrap();
    let sign = |aud: Option<serde_json::Value>| {
        let mut v = c.clone();
        match aud {
            Some(a) => v["aud"] = a,
            None => drop(v.as_object_mut().unwrap().remove("aud")),
        }
        issuer.key.sign("at+jwt", &v)
    };
    assert!(guard.verify(&sign(Some(json!([CRM])))).await.is_ok(), "a one-element array is tolerated");
    for aud in [
        None,
        Some(json!("https://reports.example.test")),
        Some(json!([CRM, "https://reports.example.test"])),
        Some(json!("*")),
        Some(json!([])),
        Some(json!(["*"])),
        Some(json!(format!("{CRM}/"))),
        Some(json!(7)),
        Some(json!(null)),
        Some(json!([7])),
        Some(json!({ "aud": CRM })),
    ] {
        assert_eq!(refused(guard.verify(&sign(aud.clone())).await), Reason::Audience, "{aud:?}");
    }
}

#[tokio::test]
async fn required_claims_and_the_exact_issuer() {
    let issuer = TestIssuer::new(ISS);
    let guard = issuer.guard(CRM).await;
    let c = serde_json::to_value(issuer.claims("usr_ada", CRM)).unwrap();
    for missing in ["exp", "iat", "sub", "client_id", "jti", "iss"] {
        let mut v = c.clone();
        v.as_object_mut().unwrap().remove(missing);
        assert_eq!(refused(guard.verify(&issuer.key.sign("at+jwt", &v)).await), Reason::Claims, "{missing}");
    }
    for empty in ["sub", "client_id", "jti"] {
        let mut v = c.clone();
        v[empty] = json!("");
        assert_eq!(refused(guard.verify(&issuer.key.sign("at+jwt", &v)).await), Reason::Claims, "empty {empty}");
    }
    let mut v = c.clone();
    v["exp"] = json!("soon");
    assert_eq!(refused(guard.verify(&issuer.key.sign("at+jwt", &v)).await), Reason::Claims);
    for iss in [
        "https://id.example.test/",
        "https://ID.example.test",
        "http://id.example.test",
        "https://evil.test",
    ] {
        let mut v = c.clone();
        v["iss"] = json!(iss);
        assert_eq!(refused(guard.verify(&issuer.key.sign("at+jwt", &v)).await), Reason::Issuer, "{iss}");
    }
}

#[tokio::test]
async fn expiry_and_not_before_hold_with_a_ten_second_leeway() {
    let issuer = TestIssuer::new(ISS);
    let clock = ManualClock::starting_now();
    let guard = issuer.builder(CRM).clock(clock.clone()).connect().await.unwrap();
    assert!(format!("{guard:?}").contains("leeway_seconds: 10"), "{guard:?}");
    let c = issuer.claims("usr_ada", CRM);
    let token = issuer.sign(&c);
    clock.advance(c.exp - clock.now() + 9);
    assert!(guard.verify(&token).await.is_ok(), "within the leeway");
    clock.advance(1);
    assert_eq!(refused(guard.verify(&token).await), Reason::Expired);

    let clock = ManualClock::starting_now();
    let guard = issuer.builder(CRM).clock(clock.clone()).connect().await.unwrap();
    let mut c = issuer.claims("usr_ada", CRM);
    c.nbf = Some(clock.now() + 60);
    let early = issuer.sign(&c);
    assert_eq!(refused(guard.verify(&early).await), Reason::NotYetValid);
    clock.advance(51);
    assert!(guard.verify(&early).await.is_ok(), "nbf honoured within the leeway");
    let mut c = issuer.claims("usr_ada", CRM);
    c.iat = clock.now() + 3600;
    c.exp = c.iat + 600;
    assert_eq!(refused(guard.verify(&issuer.sign(&c)).await), Reason::NotYetValid, "issued in the future");
}

#[tokio::test]
async fn a_tampered_or_foreign_signature_is_refused() {
    let issuer = TestIssuer::new(ISS);
    let guard = issuer.guard(CRM).await;
    let mut c = issuer.claims("usr_ada", CRM);
    let token = issuer.sign(&c);
    // The same header and signature over claims that grant more.
    c.permissions = vec!["admin:everything".into()];
    let forged = issuer.sign(&c);
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = forged.split('.').nth(1).unwrap();
    parts[1] = forged_payload;
    assert_eq!(refused(guard.verify(&parts.join(".")).await), Reason::Signature);
    // Another key claiming this key's kid.
    let stranger = TestKey::generate();
    let claimed = stranger.sign_with_header(&json!({"alg": "EdDSA", "typ": "at+jwt", "kid": issuer.key.kid}), &c);
    assert_eq!(refused(guard.verify(&claimed).await), Reason::Signature);
    // A kid nobody published.
    assert_eq!(refused(guard.verify(&stranger.sign("at+jwt", &c)).await), Reason::UnknownKey);
}

#[tokio::test]
async fn malformed_oversized_and_foreign_tokens_are_refused_before_any_key_lookup() {
    let issuer = TestIssuer::new(ISS);
    let clock = ManualClock::starting_now();
    let guard = issuer.builder(CRM).clock(clock.clone()).connect().await.unwrap();
    clock.advance(31);
    let fetched = issuer.keys.fetches();
    // Each of these names a kid the guard does not know: past the cooldown, a lookup would refetch.
    let stranger = TestKey::generate();
    let mut big = issuer.claims("usr_ada", CRM);
    big.roles = vec!["r".repeat(9000)];
    let mut foreign = issuer.claims("usr_ada", CRM);
    foreign.iss = "https://evil.test".into();
    let mut other_product = issuer.claims("usr_ada", CRM);
    other_product.aud = "https://reports.example.test".into();
    let mut expired = issuer.claims("usr_ada", CRM);
    expired.exp -= 3600;
    let mut fine = issuer.claims("usr_ada", CRM);
    fine.exp += 3600;
    let cases = [
        ("oversized", stranger.sign("at+jwt", &big), Reason::Oversized),
        ("wrong issuer", stranger.sign("at+jwt", &foreign), Reason::Issuer),
        ("other product", stranger.sign("at+jwt", &other_product), Reason::Audience),
        ("expired", stranger.sign("at+jwt", &expired), Reason::Expired),
        ("two segments", "abc.def".to_owned(), Reason::Malformed),
        ("four segments", "a.b.c.d".to_owned(), Reason::Malformed),
        (
            "empty signature",
            format!("{}.", stranger.sign("at+jwt", &foreign).rsplit_once('.').unwrap().0),
            Reason::Malformed,
        ),
        ("not base64", "!!!.???.***".to_owned(), Reason::Malformed),
        (
            "payload not JSON",
            format!("{}.bm90IGpzb24.c2ln", stranger.sign("at+jwt", &foreign).split('.').next().unwrap()),
            Reason::Malformed,
        ),
    ];
    for (what, token, reason) in cases {
        assert_eq!(refused(guard.verify(&token).await), reason, "{what}");
    }
    assert_eq!(issuer.keys.fetches(), fetched, "none of them made the guard fetch keys");
    // The same unknown kid on a token that passes those checks does fetch: the count can move.
    let _ = guard.verify(&stranger.sign("at+jwt", &fine)).await;
    assert_eq!(issuer.keys.fetches(), fetched + 1);
    assert_eq!(portico_guard::MAX_TOKEN_BYTES, 8192);
}

#[test]
fn verify_outcomes_fetches_and_stale_keys_are_counted() {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    metrics::with_local_recorder(&recorder, || {
        rt.block_on(async {
            let issuer = TestIssuer::new(ISS);
            let clock = ManualClock::starting_now();
            let guard = issuer.builder(CRM).clock(clock.clone()).connect().await.unwrap();
            let mut c = issuer.claims("usr_ada", CRM);
            c.exp += 3600;
            let token = issuer.sign(&c);
            guard.verify(&token).await.unwrap();
            let _ = guard.verify("not.a.token").await;
            let _ = guard.verify(&issuer.key.sign("JWT", &c)).await;
            clock.advance(400); // past the keys' max-age (300 s), no refresh: served stale
            guard.verify(&token).await.unwrap();
        })
    });
    let text = handle.render();
    for line in [
        "portico_guard_verifications_total{outcome=\"ok\"} 2",
        "portico_guard_verifications_total{outcome=\"malformed\"} 1",
        "portico_guard_verifications_total{outcome=\"type\"} 1",
        "portico_guard_jwks_fetches_total{result=\"ok\"} 1",
        "portico_guard_stale_keys_served_total 1",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
