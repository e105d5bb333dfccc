//! The suite file: bad input names the line and field and leaves the store untouched.

use portico_server::suite::Suite;
use std::collections::HashSet;

fn err(text: &str) -> String {
    Suite::parse("suite.toml", text, &HashSet::new()).err().expect("an error").to_string()
}

#[test]
fn unknown_key_names_its_line() {
    let e = err("[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\ncolour = \"red\"\n");
    assert!(e.starts_with("suite.toml:5:"), "{e}");
    assert!(e.contains("colour"), "{e}");
}

#[test]
fn bad_reference_names_line_and_field() {
    let e = err(
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n\n[[client]]\nid = \"x\"\nproduct = \"crmx\"\nkind = \"public\"\nredirect_uris = [\"https://a.test/cb\"]\n",
    );
    assert!(e.starts_with("suite.toml:6:"), "{e}");
    assert!(e.contains("field product") && e.contains("crmx"), "{e}");
}

#[test]
fn duplicate_client_is_refused() {
    let c = "[[client]]\nid = \"x\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"https://a.test/cb\"]\n";
    let e = err(&format!(
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n{c}{c}"
    ));
    assert!(e.starts_with("suite.toml:10:") && e.contains("duplicate client"), "{e}");
}

#[test]
fn short_secret_is_refused() {
    let e = err(
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"x\"\nproduct = \"crm\"\nkind = \"confidential\"\nsecret = \"short\"\nredirect_uris = [\"https://a.test/cb\"]\n",
    );
    assert!(e.contains("at least 32"), "{e}");
}

#[test]
fn backchannel_logout_uri_must_be_http_without_fragment() {
    let suite = |uri: &str| {
        format!(
            "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"x\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [\"https://a.test/cb\"]\nbackchannel_logout_uri = \"{uri}\"\n"
        )
    };
    for bad in [
        "/relative",
        "file:///etc/passwd",
        "https://crm.example.test/bcl#frag",
        "mailto:ops@example.test",
    ] {
        let e = err(&suite(bad));
        assert!(e.starts_with("suite.toml:5:") && e.contains("field backchannel_logout_uri"), "{bad}: {e}");
    }
    Suite::parse("suite.toml", &suite("https://crm.example.test/bcl?tenant=all"), &HashSet::new()).expect("a query is allowed");
}

#[tokio::test]
async fn bad_file_leaves_store_unchanged_and_apply_is_idempotent() {
    let dir = std::env::temp_dir().join(format!("portico-suite-{}", uuid::Uuid::new_v4().simple()));
    let cfg = portico_server::config::Config {
        data_dir: dir.clone(),
        ..Default::default()
    };
    let (store, kek) = portico_server::open_store(&cfg, portico_server::NewKey::Refused).await.unwrap();
    let before = store.config_version().await.unwrap();
    let bad = format!("{}\n[[grant]]\nuser = \"nobody@example.test\"\nproduct = \"crm\"\nroles = []\n", crate::SUITE);
    assert!(Suite::parse("suite.toml", &bad, &HashSet::new()).is_err());
    assert_eq!(store.config_version().await.unwrap(), before);
    assert!(store.list_users().await.unwrap().is_empty());
    let suite = Suite::parse("suite.toml", crate::SUITE, &HashSet::new()).unwrap();
    let first = suite.apply(&store, &kek, "test", 1).await.unwrap();
    assert!(first.iter().any(|l| l == "created product crm"), "{first:?}");
    let second = suite.apply(&store, &kek, "test", 2).await.unwrap();
    assert!(second.is_empty(), "second apply changed {second:?}");
    store.close().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_first_factor_by_mailed_link_needs_a_portico_that_sends_mail() {
    let text = "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\nmfa_enrolment = \"email_link\"\n";
    let suite = portico_server::suite::Suite::parse("suite.toml", text, &std::collections::HashSet::new()).unwrap();
    let e = suite.check_for_mail(false).unwrap_err().to_string();
    assert!(
        e.starts_with("suite.toml:1:") && e.contains("field mfa_enrolment") && e.contains("smtp_url"),
        "{e}"
    );
    assert!(suite.check_for_mail(true).is_ok());
    let Err(e) = portico_server::suite::Suite::parse("suite.toml", &text.replace("email_link", "by_pigeon"), &std::collections::HashSet::new()) else {
        panic!("an unknown mfa_enrolment was taken")
    };
    assert!(e.to_string().starts_with("suite.toml:5:") && e.to_string().contains("email_link"), "{e}");
}

#[test]
fn the_demo_suite_is_whole_once_filled_in() {
    let secret = "demo-secret-0123456789abcdef0123456789abcdef";
    let text = portico_server::cli::demo_suite("http://127.0.0.1:8080", secret, secret, secret);
    let unfilled: Vec<&str> = text.lines().filter(|l| !l.starts_with('#') && l.contains("${")).collect();
    assert!(unfilled.is_empty(), "{unfilled:?}");
    let suite = portico_server::suite::Suite::parse("demo suite", &text, &std::collections::HashSet::new());
    assert!(suite.is_ok(), "the demo suite does not parse");
    assert!(text.contains("redirect_uris = [\"http://127.0.0.1:8080/demo/callback/crm-web\"]"), "{text}");
}

#[test]
fn an_empty_or_short_user_password_is_refused() {
    // (An `env:` password is checked the same way once resolved.)
    for password in ["\"\"", "\"short\""] {
        let e = err(&format!("[[user]]\nemail = \"ada@example.test\"\npassword = {password}\n"));
        assert!(
            e.starts_with("suite.toml:1:") && e.contains("field password: must be at least 8 characters"),
            "{password}: {e}"
        );
    }
}

#[test]
fn a_redirect_uri_that_runs_or_embeds_content_is_refused() {
    let suite = |uri: &str| {
        format!(
            "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"app\"\nproduct = \"crm\"\nkind = \"public\"\nredirect_uris = [{uri:?}]\n"
        )
    };
    for bad in [
        "javascript:alert(1)//",
        "data:text/html,<script>x</script>",
        "vbscript:msgbox",
        "file:///etc/passwd",
    ] {
        let e = err(&suite(bad));
        assert!(e.contains("field redirect_uris") && e.contains("must not use the"), "{bad}: {e}");
    }
    for good in ["http://127.0.0.1:7000/cb", "https://app.example.test/cb"] {
        assert!(Suite::parse("suite.toml", &suite(good), &HashSet::new()).is_ok(), "{good}");
    }
    // A private-use scheme reaches a native app only (RFC 8252 §7.1).
    let e = err(&suite("com.example.app:/oauth2redirect"));
    assert!(e.contains("field redirect_uris") && e.contains("application_type = \"native\""), "{e}");
}

/// A native app's client entry with these `redirect_uris` and extra lines.
fn native(uris: &str, extra: &str) -> String {
    format!(
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"app\"\nproduct = \"crm\"\napplication_type = \"native\"\nredirect_uris = [{uris}]\n{extra}"
    )
}

#[test]
fn a_native_app_registers_loopback_private_use_and_claimed_https_redirects() {
    let good = native(
        r#""http://127.0.0.1/cb", "http://[::1]/cb", "http://127.0.0.1:7000/cb", "com.example.app:/oauth2redirect", "https://app.example.test/cb""#,
        "kind = \"public\"\n",
    );
    assert!(Suite::parse("suite.toml", &good, &HashSet::new()).is_ok());
}

#[test]
fn a_native_app_with_a_secret_localhost_or_cleartext_redirect_is_refused() {
    let public = "kind = \"public\"\n";
    for (uri, says) in [
        ("http://localhost/cb", "localhost"),
        ("http://localhost:7000/cb", "localhost"),
        ("https://localhost/cb", "localhost"),
        ("http://app.localhost/cb", "localhost"),
        ("http://app.example.test/cb", "not the loopback interface"),
        ("http://127.0.0.2/cb", "not the loopback interface"),
        ("myapp:/cb", "reverse domain name"),
        ("javascript:alert(1)//", "must not use the"),
    ] {
        let e = err(&native(&format!("{uri:?}"), public));
        assert!(
            e.starts_with("suite.toml:5:") && e.contains("field redirect_uris") && e.contains(says),
            "{uri}: {e}"
        );
    }
    let e = err(&native(
        "\"http://127.0.0.1/cb\"",
        "kind = \"confidential\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n",
    ));
    assert!(e.contains("field kind") && e.contains("RFC 8252 §8.5"), "{e}");
    let e = err(&native("\"http://127.0.0.1/cb\"", "kind = \"public\"\n").replace("\"native\"", "\"desktop\""));
    assert!(e.contains("desktop") && e.contains("native"), "{e}");
}

/// A `private_key_jwt` client with these extra lines.
fn keyed(extra: &str) -> String {
    format!(
        "[[product]]\nslug = \"crm\"\nname = \"CRM\"\naudience = \"https://crm.example.test\"\n[[client]]\nid = \"bot\"\nproduct = \"crm\"\nkind = \"confidential\"\nauth_method = \"private_key_jwt\"\ngrant_types = [\"client_credentials\"]\n{extra}"
    )
}

const X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

#[test]
fn a_private_key_jwt_client_registers_public_keys_it_can_sign_with() {
    let good = keyed(&format!(
        "jwks = {{ keys = [{{ kty = \"OKP\", crv = \"Ed25519\", x = \"{X}\", kid = \"k1\" }}] }}\n"
    ));
    assert!(Suite::parse("suite.toml", &good, &HashSet::new()).is_ok());
    assert!(Suite::parse("suite.toml", &keyed("jwks_uri = \"https://bot.example.test/jwks\"\n"), &HashSet::new()).is_ok());
    for (extra, field, says) in [
        (String::new(), "jwks", "needs jwks or jwks_uri"),
        (
            format!("jwks = {{ keys = [{{ kty = \"OKP\", crv = \"Ed25519\", x = \"{X}\", kid = \"k1\", d = \"{X}\" }}] }}\n"),
            "jwks",
            "private member \"d\"",
        ),
        (
            format!("jwks = {{ keys = [{{ kty = \"OKP\", crv = \"Ed25519\", x = \"{X}\" }}] }}\n"),
            "jwks",
            "no kid",
        ),
        ("jwks = { keys = [] }\n".to_owned(), "jwks", "must be a JWK Set"),
        (
            "jwks = { keys = [{ kty = \"oct\", kid = \"h\", alg = \"HS256\" }] }\n".to_owned(),
            "jwks",
            "no key that verifies",
        ),
        (
            format!(
                "jwks = {{ keys = [{{ kty = \"OKP\", crv = \"X25519\", x = \"{X}\", kid = \"a\" }}, {{ kty = \"OKP\", crv = \"Ed25519\", x = \"{X}\", kid = \"b\" }}] }}\n"
            ),
            "jwks",
            "1 of its keys cannot verify",
        ),
        (
            format!("jwks_uri = \"https://bot.example.test/jwks\"\njwks = {{ keys = [{{ kty = \"OKP\", crv = \"Ed25519\", x = \"{X}\", kid = \"k\" }}] }}\n"),
            "jwks_uri",
            "not both",
        ),
        ("jwks_uri = \"http://bot.example.test/jwks\"\n".to_owned(), "jwks_uri", "https"),
        (
            "jwks_uri = \"https://bot.example.test/jwks\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n".to_owned(),
            "secret",
            "not a secret",
        ),
    ] {
        let e = err(&keyed(&extra));
        assert!(
            e.starts_with("suite.toml:5:") && e.contains(&format!("field {field}")) && e.contains(says),
            "{extra}: {e}"
        );
    }
    // Keys belong to private_key_jwt clients only.
    let e = err(&keyed("jwks_uri = \"https://bot.example.test/jwks\"\n")
        .replace("private_key_jwt", "client_secret_basic")
        .replace("grant_types", "secret = \"0123456789abcdef0123456789abcdef\"\ngrant_types"));
    assert!(e.contains("field jwks_uri") && e.contains("only a client with auth_method"), "{e}");
}
