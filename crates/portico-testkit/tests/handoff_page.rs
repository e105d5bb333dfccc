//! A product's hand-off page (`handoff_uri`, one per product, of a confidential client): the
//! hand-off answer names the target's page, and the guard builds the link a front end opens (the
//! code its only parameter; no token in any URL).

use crate::tenancy::{CRM_SECRET, REPORTS_SECRET, TENANTS, handoff, redeem_handoff, tokens};
use crate::*;
use std::sync::LazyLock;

const REPORTS: &str = "https://reports.example.test";
const PAGE: &str = "https://reports.example.test/handoff?from=portico";

static WITH_PAGE: LazyLock<String> = LazyLock::new(|| {
    let suite = TENANTS.replace("id = \"reports-web\"\n", &format!("id = \"reports-web\"\nhandoff_uri = \"{PAGE}\"\n"));
    assert_ne!(suite, TENANTS);
    suite
});

async fn the_answer_names_the_target_products_page(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let access = t["access_token"].as_str().unwrap();
    let (status, h) = handoff(s, access, &[("resource", REPORTS), ("context", "report=42")]).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["handoff_uri"], PAGE);

    // The guard's link: the page, its own query kept, the code added, nothing else.
    let crm = portico_guard::Guard::builder(&s.base, "https://crm.example.test")
        .client_credentials("crm-web", CRM_SECRET)
        .connect()
        .await
        .unwrap();
    let link = crm.handoff_link(access, REPORTS, Some("acme"), Some("report=7")).await.unwrap();
    let url = url::Url::parse(link.url.as_deref().expect("a page")).unwrap();
    assert_eq!(url.origin().ascii_serialization(), REPORTS);
    assert_eq!(url.path(), "/handoff");
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    assert_eq!(
        pairs,
        [("from".to_owned(), "portico".to_owned()), ("handoff_code".to_owned(), link.code.clone())]
    );
    assert!(!link.url.as_deref().unwrap().contains(access), "no token in the URL");
    // The code in the link is what the target's backend redeems, once.
    let (status, landed) = redeem_handoff(s, "reports-web", REPORTS_SECRET, &link.code).await;
    assert_eq!((status, landed["context"].as_str()), (200, Some("report=7")), "{landed}");
    assert_eq!(redeem_handoff(s, "reports-web", REPORTS_SECRET, &link.code).await.0, 400);
}
both_stores!(the_answer_names_the_target_products_page, &WITH_PAGE);

async fn without_a_page_the_answer_names_none(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let (status, h) = handoff(s, t["access_token"].as_str().unwrap(), &[("resource", REPORTS)]).await;
    assert_eq!(status, 200, "{h}");
    assert!(h.get("handoff_uri").is_none(), "{h}");
}
both_stores!(without_a_page_the_answer_names_none, TENANTS);

#[test]
fn a_handoff_page_is_registered_exactly_once_per_product_by_its_backend() {
    let parse = |suite: &str| {
        portico_server::suite::Suite::parse("suite.toml", suite, &std::collections::HashSet::new())
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(parse(&WITH_PAGE), None);
    let with = |client: &str, page: &str| TENANTS.replace(&format!("id = \"{client}\"\n"), &format!("id = \"{client}\"\nhandoff_uri = \"{page}\"\n"));
    for (client, page, why) in [
        ("reports-spa", "https://reports.example.test/handoff", "confidential"),
        ("reports-web", "http://reports.example.test/handoff", "https"),
        ("reports-web", "https://reports.example.test/handoff#x", "fragment"),
        ("reports-web", "/handoff", "absolute"),
        ("reports-web", "javascript:alert(1)", "javascript"),
    ] {
        let e = parse(&with(client, page)).unwrap_or_else(|| panic!("{page} was taken"));
        assert!(e.contains("field handoff_uri") && e.contains(why), "{page}: {e}");
    }
    assert_eq!(
        parse(&with("reports-web", "http://127.0.0.1:7103/handoff")),
        None,
        "loopback http for development"
    );
    // Two pages for one product: which would a hand-off open?
    let two = WITH_PAGE.replace(
        "id = \"billing-web\"\nproduct = \"billing\"",
        "id = \"billing-web\"\nproduct = \"reports\"\nhandoff_uri = \"https://reports.example.test/other\"",
    );
    let e = parse(&two).expect("two pages refused");
    assert!(e.contains("field handoff_uri") && e.contains("one page per product"), "{e}");
}
