use reqwest::Method;
use serde_json::Value;

use crate::harness::{TestServer, body, bytes};

#[tokio::test]
async fn upload_query_purge_round_trip() {
    let s = TestServer::start().await;
    s.add_connection("default", "conn_a");
    s.put("conn_a", "100", "full", "image/jpeg", bytes(1, 1000))
        .await;
    s.put("conn_a", "100", "thumb", "image/jpeg", bytes(2, 100))
        .await;
    let page: Value = body(s.conn(Method::GET, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let purge: Value = body(s.conn(Method::DELETE, "/v2/vault-plus/media", "conn_a")).await;
    assert_eq!(
        purge,
        serde_json::json!({"success": true, "purgedCount": 2, "freedBytes": 1100})
    );
    s.wait_reclaimed().await;
    assert!(s.blob_files().is_empty(), "{:?}", s.blob_files());
}
