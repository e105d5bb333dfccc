//! Switching tenant through the refresh grant (`organization` on `grant_type=refresh_token`): no
//! redirect, no iframe; the same gate as any token; a family of its own in the same product
//! session; naming no organization never yields another tenant's token.

use crate::admin_api::{ADMIN, OPS_SECRET, admin_token, api};
use crate::flow::decode_payload;
use crate::tenancy::{BILLING_SECRET, CRM_SECRET, TENANTS, refresh, tokens};
use crate::*;

async fn switch(s: &TestServer, rt: &str, organization: &str) -> (u16, serde_json::Value) {
    post_basic(
        s,
        "/oauth2/token",
        "crm-web",
        CRM_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt), ("organization", organization)],
    )
    .await
}

fn org(t: &serde_json::Value) -> String {
    decode_payload(t["access_token"].as_str().unwrap())["org_name"].as_str().unwrap().to_owned()
}

async fn the_refresh_grant_switches_to_a_tenant_the_user_holds(s: &TestServer) {
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let rt_acme = acme["refresh_token"].as_str().unwrap().to_owned();
    let (status, globex) = switch(s, &rt_acme, "globex").await;
    assert_eq!(status, 200, "{globex}");
    assert_eq!(org(&globex), "Globex");
    let at = decode_payload(globex["access_token"].as_str().unwrap());
    assert_eq!(at["permissions"], serde_json::json!(["read:contacts"]), "Globex's own roles (viewer)");
    assert_eq!(globex["org_id"], at["org_id"]);
    let rt_globex = globex["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(rt_globex, rt_acme);

    // Each tenant's refresh token refreshes its own tenant when none is named; the switch spent
    // nothing of Acme's.
    let (status, again) = refresh(s, "crm-web", CRM_SECRET, &rt_acme).await;
    assert_eq!((status, org(&again).as_str()), (200, "Acme Bank"), "{again}");
    let (status, g2) = refresh(s, "crm-web", CRM_SECRET, &rt_globex).await;
    assert_eq!((status, org(&g2).as_str()), (200, "Globex"));
    // Naming the family's own tenant is a plain refresh; naming it by slug, id or handle alike.
    let rt_acme = again["refresh_token"].as_str().unwrap().to_owned();
    let (status, same) = switch(s, &rt_acme, "acme").await;
    assert_eq!((status, org(&same).as_str()), (200, "Acme Bank"));
    assert_ne!(same["refresh_token"], again["refresh_token"], "rotated as any refresh");

    // A tenant without a grant and one that does not exist: the same refusal, nothing issued.
    let rt_acme = same["refresh_token"].as_str().unwrap().to_owned();
    let (status, none) = switch(s, &rt_acme, "initech").await;
    let (status2, unknown) = switch(s, &rt_acme, "no-such-tenant").await;
    assert_eq!((status, status2), (400, 400));
    assert_eq!(none, unknown, "an unknown tenant answers as a forbidden one");
    assert_eq!(none["error"], "invalid_grant");
    // …and the token still works.
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, &rt_acme).await.0, 200);
}
both_stores!(the_refresh_grant_switches_to_a_tenant_the_user_holds, TENANTS);

async fn a_revoked_grant_stops_the_switch_and_signing_out_ends_both(s: &TestServer) {
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let rt = acme["refresh_token"].as_str().unwrap().to_owned();
    let ops = admin_token(s, "ops-bot", OPS_SECRET).await;
    let (status, _, body) = api(s, "DELETE", "/api/v1/grants?user=ada@example.test&product=crm&tenant=globex", Some(&ops), None).await;
    assert_eq!(status, 204, "{body}");
    let (status, refused) = switch(s, &rt, "globex").await;
    assert_eq!((status, refused["error"].as_str()), (400, Some("invalid_grant")), "{refused}");

    // A switched family lives in the same product session: the session's end ends both.
    let mut b = Browser::new();
    let t = tokens(&mut b, s, "crm-web", CRM_SECRET, "olga@example.test", Some("acme")).await;
    let rt = t["refresh_token"].as_str().unwrap().to_owned();
    let (status, globex) = switch(s, &rt, "globex").await;
    assert_eq!(status, 200, "{globex}");
    let olga = decode_payload(t["access_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();
    let (status, _, body) = api(s, "DELETE", &format!("/api/v1/users/{olga}/sessions"), Some(&ops), None).await;
    assert_eq!((status, body["ended"].as_i64()), (200, Some(1)), "one product session, two tenants: {body}");
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, &rt).await.0, 400);
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, globex["refresh_token"].as_str().unwrap()).await.0, 400);
}
both_stores!(a_revoked_grant_stops_the_switch_and_signing_out_ends_both, &ADMIN);

async fn a_product_without_tenants_takes_no_organization(s: &TestServer) {
    let t = tokens(&mut Browser::new(), s, "billing-web", BILLING_SECRET, "ada@example.test", None).await;
    let rt = t["refresh_token"].as_str().unwrap();
    let (status, body) = post_basic(
        s,
        "/oauth2/token",
        "billing-web",
        BILLING_SECRET,
        &[("grant_type", "refresh_token"), ("refresh_token", rt), ("organization", "acme")],
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert_eq!(refresh(s, "billing-web", BILLING_SECRET, rt).await.0, 200, "refused before it was spent");
}
both_stores!(a_product_without_tenants_takes_no_organization, TENANTS);

async fn a_switch_joins_the_tree_reuse_ends_all_of_it(s: &TestServer) {
    // A thief switches with a stolen current token; the victim goes on rotating the original.
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let stolen = acme["refresh_token"].as_str().unwrap().to_owned();
    let (status, thief) = switch(s, &stolen, "globex").await;
    assert_eq!(status, 200, "{thief}");
    let (status, victim) = refresh(s, "crm-web", CRM_SECRET, &stolen).await;
    assert_eq!(status, 200);
    // The thief replays the original (now rotated): reuse, and the whole tree ends — the
    // thief's own Globex family with it.
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, &stolen).await.0, 400);
    assert_eq!(
        refresh(s, "crm-web", CRM_SECRET, thief["refresh_token"].as_str().unwrap()).await.0,
        400,
        "the switched family escaped reuse detection"
    );
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, victim["refresh_token"].as_str().unwrap()).await.0, 400);
    let (_, intro) = post_basic(
        s,
        "/oauth2/introspect",
        "crm-web",
        CRM_SECRET,
        &[("token", thief["access_token"].as_str().unwrap())],
    )
    .await;
    assert_eq!(intro["active"], false);

    // A tree holds one live family per tenant: switching to Globex again replaces the first.
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let rt = acme["refresh_token"].as_str().unwrap().to_owned();
    let (_, first) = switch(s, &rt, "globex").await;
    let (status, second) = switch(s, &rt, "globex").await;
    assert_eq!(status, 200);
    assert_eq!(
        refresh(s, "crm-web", CRM_SECRET, first["refresh_token"].as_str().unwrap()).await.0,
        400,
        "replaced"
    );
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, second["refresh_token"].as_str().unwrap()).await.0, 200);
    // Revoking one family's token (RFC 7009) ends the tree too.
    let (status, _) = post_basic(s, "/oauth2/revoke", "crm-web", CRM_SECRET, &[("token", rt.as_str())]).await;
    assert_eq!(status, 200);
    assert_eq!(refresh(s, "crm-web", CRM_SECRET, second["refresh_token"].as_str().unwrap()).await.0, 400);
}
both_stores!(a_switch_joins_the_tree_reuse_ends_all_of_it, TENANTS);

async fn a_family_of_an_ended_product_session_refreshes_no_more(s: &TestServer) {
    // The race a sign-out can lose on PostgreSQL (a switch committing after its UPDATE) leaves a
    // live family in an ended product session: its refresh stops there.
    let acme = tokens(&mut Browser::new(), s, "crm-web", CRM_SECRET, "ada@example.test", Some("acme")).await;
    let rt = acme["refresh_token"].as_str().unwrap().to_owned();
    let sid = decode_payload(acme["access_token"].as_str().unwrap())["sid"].as_str().unwrap().to_owned();
    let (_, globex) = switch(s, &rt, "globex").await;
    // The product session ends, the switched family is left live: the race's outcome, by hand.
    crate::store_conformance::behind_the_back(s, &format!("UPDATE product_sessions SET ended_at = 1 WHERE sid = '{sid}'")).await;
    let (status, body) = refresh(s, "crm-web", CRM_SECRET, globex["refresh_token"].as_str().unwrap()).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}
both_stores!(a_family_of_an_ended_product_session_refreshes_no_more, TENANTS);
