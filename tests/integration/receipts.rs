//! Erasure receipts through the API: named by the `x-vaultplus-receipt`
//! header of a purge, delete or connection removal (whose bodies stay as
//! they were), `bytes_gone` only once the blobs are really gone, with the
//! digest of what was stored, signed by a key the API publishes; and
//! finished after a kill -9 in the middle of reclaim. (PyNaCl verifies the
//! same receipts in tests/sdk/test_receipts.py.)

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::harness::{TestServer, body, bytes};

/// What a test stored: (media ID, label, bytes).
type Stored = Vec<(String, String, Vec<u8>)>;

async fn store_items(s: &TestServer, conn: &str, ids: impl Iterator<Item = u32>) -> Stored {
    let mut out = Vec::new();
    for i in ids {
        for (label, len) in [("full", 300 + i as usize % 50), ("thumb", 20)] {
            let data = bytes((i % 251) as u8, len);
            s.put(conn, &i.to_string(), label, "image/jpeg", data.clone())
                .await;
            out.push((i.to_string(), label.to_owned(), data));
        }
    }
    out
}

/// The digest a receipt must carry for these variants, computed here from
/// the bytes the test sent.
fn expected_digest(stored: &Stored) -> String {
    let mut lines: Vec<String> = stored
        .iter()
        .map(|(m, l, b)| {
            format!(
                "{m}\t{l}\t{}\t{}\n",
                hex::encode(Sha256::digest(b)),
                b.len()
            )
        })
        .collect();
    lines.sort();
    hex::encode(Sha256::digest(lines.concat().as_bytes()))
}

/// Sends a connection's request and answers its receipt and body.
async fn receipted(s: &TestServer, method: Method, path: &str, conn: &str) -> (String, Value) {
    let r = s.conn(method, path, conn).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let id = receipt_header(&r);
    (id, r.json().await.unwrap())
}

fn receipt_header(r: &reqwest::Response) -> String {
    let all: Vec<_> = r.headers().get_all("x-vaultplus-receipt").iter().collect();
    assert_eq!(all.len(), 1, "one receipt header");
    let id = all[0].to_str().unwrap().to_owned();
    assert!(id.starts_with("rcpt_") && id.len() == 37, "{id}");
    id
}

async fn get_receipt(s: &TestServer, id: &str) -> Value {
    let r = s
        .req(Method::GET, &format!("/v2/vault-plus/receipts/{id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_bytes_gone(s: &TestServer, id: &str) -> Value {
    for _ in 0..600 {
        let r = get_receipt(s, id).await;
        if r["state"] == "bytes_gone" {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("receipt {id} never reached bytes_gone");
}

/// Checks the signature with the published key it names.
async fn assert_signed(s: &TestServer, receipt: &Value) {
    let keys = body(s.req(Method::GET, "/v2/vault-plus/receipts/keys")).await;
    let key = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyId"] == receipt["keyId"])
        .expect("the signing key is published");
    let raw = URL_SAFE_NO_PAD
        .decode(key["publicKey"].as_str().unwrap())
        .unwrap();
    let public = VerifyingKey::from_bytes(&raw.try_into().unwrap()).unwrap();
    let sig = URL_SAFE_NO_PAD
        .decode(receipt["signature"].as_str().unwrap())
        .unwrap();
    let sig = Signature::from_slice(&sig).unwrap();
    let mut unsigned = receipt.clone();
    unsigned.as_object_mut().unwrap().remove("signature");
    // serde_json's map is sorted and its output compact: the JCS form of
    // these values.
    let message = unsigned.to_string();
    public
        .verify(message.as_bytes(), &sig)
        .expect("the receipt verifies");
    // Any change breaks it.
    let mut forged = unsigned.clone();
    forged["freedBytes"] = json!(unsigned["freedBytes"].as_u64().unwrap() + 1);
    assert!(public.verify(forged.to_string().as_bytes(), &sig).is_err());
}

#[tokio::test]
async fn a_purge_receipt_proves_its_bytes_are_gone() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_r");
    s.add_connection("default", "conn_keep");
    let stored = store_items(&s, "conn_r", 0..6).await;
    let kept = store_items(&s, "conn_keep", 0..2).await;
    let held: u64 = stored.iter().map(|v| v.2.len() as u64).sum();

    let (id, answer) = receipted(&s, Method::DELETE, "/v2/vault-plus/media", "conn_r").await;
    // The seed's body, exactly.
    assert_eq!(
        answer,
        json!({"success": true, "purgedCount": 12, "freedBytes": held})
    );

    let first = get_receipt(&s, &id).await;
    assert_eq!(first["id"], id.as_str());
    assert_eq!(first["kind"], "purge");
    assert_eq!(first["connectionId"], "conn_r");
    assert_eq!(
        (first["purgedCount"].clone(), first["freedBytes"].clone()),
        (json!(12), json!(held))
    );
    assert!(first["requestedAt"].as_str().unwrap().ends_with('Z'));
    let gone = wait_bytes_gone(&s, &id).await;
    // Once it says so, the purged blobs are gone from the store: only the
    // kept connection's are left.
    assert_eq!(s.blob_files().len(), kept.len());
    s.wait_reclaimed().await;
    assert_eq!(gone["digest"], expected_digest(&stored).as_str());
    assert!(gone["bytesGoneAt"].is_string());
    assert_ne!(
        gone["signature"], first["signature"],
        "re-signed in its new state"
    );
    assert_signed(&s, &gone).await;

    // Another organization's key cannot read it.
    let stranger = s.create_key("other", &["ACCOUNT"]);
    let r = s
        .http
        .get(s.url(&format!("/v2/vault-plus/receipts/{id}")))
        .header("apiKey", stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    for bad in ["rcpt_nope", "rcpt_00000000000000000000000000000000"] {
        let r = s
            .req(Method::GET, &format!("/v2/vault-plus/receipts/{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 404);
        let e: Value = r.json().await.unwrap();
        assert!(
            e["error"].as_str().unwrap().contains("Receipt not found"),
            "{e}"
        );
    }
}

#[tokio::test]
async fn deletes_and_removals_have_receipts_that_outlive_the_connection() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_d");
    let stored = store_items(&s, "conn_d", 0..3).await;

    let (delete, answer) = receipted(&s, Method::DELETE, "/v2/vault-plus/media/1", "conn_d").await;
    assert_eq!(answer["success"], true);
    let one: Stored = stored.iter().filter(|v| v.0 == "1").cloned().collect();
    let done = wait_bytes_gone(&s, &delete).await;
    assert_eq!(done["kind"], "delete");
    assert_eq!(done["purgedCount"], 2);
    assert_eq!(done["digest"], expected_digest(&one).as_str());
    assert_signed(&s, &done).await;

    // Nothing to delete: no receipt.
    let r = s
        .conn(Method::DELETE, "/v2/vault-plus/media/1", "conn_d")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("x-vaultplus-receipt").is_none());

    let r = s
        .req(Method::DELETE, "/v2/account/connections/conn_d")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let removal = receipt_header(&r);
    let rest: Stored = stored.iter().filter(|v| v.0 != "1").cloned().collect();
    let done = wait_bytes_gone(&s, &removal).await;
    assert!(s.blob_files().is_empty(), "bytes_gone: no blob is left");
    assert_eq!(done["kind"], "connection_removal");
    assert_eq!(done["connectionId"], "conn_d");
    assert_eq!(done["digest"], expected_digest(&rest).as_str());
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty());
    assert_signed(&s, &done).await;

    // Listed for the connection, newest first, after it is gone too; a
    // page at a time.
    let list = |query: String| {
        let s = &s;
        async move {
            let r = s
                .conn(
                    Method::GET,
                    &format!("/v2/vault-plus/receipts{query}"),
                    "conn_d",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.json::<Value>().await.unwrap()
        }
    };
    let all = list(String::new()).await;
    let ids: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [removal.as_str(), delete.as_str()], "newest first");
    assert!(all.get("nextCursor").is_none());
    for r in all["items"].as_array().unwrap() {
        assert_signed(&s, r).await;
    }
    let first = list("?limit=1".into()).await;
    assert_eq!(first["items"][0]["id"], removal.as_str());
    let cursor = first["nextCursor"].as_str().unwrap().to_owned();
    let second = list(format!("?limit=1&cursor={cursor}")).await;
    assert_eq!(second["items"][0]["id"], delete.as_str());
    assert!(second.get("nextCursor").is_none());
    // Another org's key sees none of them.
    let stranger = s.create_key("other", &["ACCOUNT"]);
    let theirs = body(
        s.http
            .get(s.url("/v2/vault-plus/receipts"))
            .header("apiKey", stranger)
            .header("x-connection-id", "conn_d"),
    )
    .await;
    assert_eq!(theirs["items"], json!([]));
    // A cursor of another connection is refused.
    let r = s
        .conn(
            Method::GET,
            &format!("/v2/vault-plus/receipts?limit=1&cursor={cursor}"),
            "conn_x",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// An eviction by a storage limit gets a receipt: not named by any answer,
/// it is found in the connection's listing, and finishes like the others.
#[tokio::test]
async fn an_eviction_by_policy_has_a_receipt_in_the_listing() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_e");
    store_items(&s, "conn_e", 0..4).await;
    let r = s
        .req(Method::PATCH, "/v2/account/connections/conn_e/settings")
        .json(&json!({"vaultPlus": {"settings": {
            "storageLimitBytes": 800, "storageLimitPurgeStrategy": "purge_oldest"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: Value = r.json().await.unwrap();
    let evicted = answer["purgeResult"]["purgedCount"].as_u64().unwrap();
    assert!(evicted > 0, "{answer}");
    let listed = body(s.conn(Method::GET, "/v2/vault-plus/receipts", "conn_e")).await;
    let items = listed["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["kind"], "eviction");
    assert_eq!(items[0]["purgedCount"], evicted);
    assert_eq!(items[0]["freedBytes"], answer["purgeResult"]["freedBytes"]);
    let done = wait_bytes_gone(&s, items[0]["id"].as_str().unwrap()).await;
    assert_eq!(done["digest"].as_str().unwrap().len(), 64);
    assert_signed(&s, &done).await;
}

/// A purge big enough for several reclaim rounds, killed after the first:
/// the receipt, committed with the purge, still completes after the
/// restart, with the digest of every variant, those reclaimed before the
/// kill included.
#[tokio::test]
async fn a_receipt_after_a_kill_mid_reclaim_still_completes() {
    // Long rests between reclaim rounds leave time to kill between them.
    let slow = ["--reclaim-share", "0.01"];
    let mut s = TestServer::start_with(&slow).await;
    s.add_connection("default", "conn_k");
    let stored = store_items(&s, "conn_k", 0..300).await;
    // 600 variants: two drain rounds of 500 at least.
    let (id, _) = receipted(&s, Method::DELETE, "/v2/vault-plus/media", "conn_k").await;
    let mut backlog = String::new();
    for _ in 0..400 {
        backlog = String::from_utf8_lossy(&s.cli(&["reclaim", "status"]).stdout).to_string();
        if !backlog.contains("retired_variants=600") && backlog.contains("retired_scopes=1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        backlog.contains("retired_scopes=1") && !backlog.contains("retired_variants=600"),
        "the kill comes mid-reclaim: {backlog}"
    );
    assert_eq!(get_receipt(&s, &id).await["state"], "committed");
    s.kill();
    s.start_again(&[]).await;
    let done = wait_bytes_gone(&s, &id).await;
    assert!(s.blob_files().is_empty(), "bytes_gone: no blob is left");
    assert_eq!(done["purgedCount"], 600);
    assert_eq!(done["digest"], expected_digest(&stored).as_str());
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty());
    assert_signed(&s, &done).await;
}
