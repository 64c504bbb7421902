//! `PUT /v2/vault-plus/media/{mediaId}/variants/{label}`: store bytes the
//! client already holds (a vaultplus extension).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use futures::TryStreamExt;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::ConnectionIdHeader;
use crate::http::error::{ApiError, ApiResult, ErrorBody};
use crate::http::extract::{Auth, ConnectionHeader, PathParams, label, media_id, single_header};
use crate::model::views::VariantView;
use crate::model::{Label, MediaId, schema};
use crate::service::{UploadRequest, VaultService};

/// A header read as one value: given twice, or not plain ASCII, is a 400.
fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> ApiResult<Option<&'a str>> {
    single_header(headers, name)?
        .map(|v| {
            v.to_str()
                .map_err(|_| ApiError::bad_request(format!("{name} header must be plain ASCII")))
        })
        .transpose()
}

/// The headers of an upload besides Content-Type (OpenAPI only).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct UploadHeaders {
    /// Duration in seconds (video/audio), a finite number from 0.
    #[param(rename = "x-media-duration", schema_with = duration_schema)]
    x_media_duration: Option<f64>,
}

fn duration_schema() -> RefOr<Schema> {
    // schema_with drops the doc comment: the schema carries it.
    schema::schema(schema::described(
        schema::number(0.0, f64::MAX),
        "Duration in seconds (video/audio), a finite number from 0.",
    ))
}

/// An upload's body: any bytes, at least one (OpenAPI only).
pub struct MediaBytes;

impl PartialSchema for MediaBytes {
    fn schema() -> RefOr<Schema> {
        schema::schema(serde_json::json!({"type": "string", "format": "binary", "minLength": 1}))
    }
}

impl ToSchema for MediaBytes {}

/// Store (or replace) one variant from the request body.
///
/// The body is streamed to storage and checksummed; the variant is `stored`
/// once the bytes are complete and durable.
#[utoipa::path(put, path = "/v2/vault-plus/media/{mediaId}/variants/{label}", tag = "Vault+ Media",
    params(ConnectionIdHeader,
        ("mediaId" = MediaId, Path, description = "Raw upstream media ID"),
        ("label" = Label, Path, description = "Variant label, e.g. full, thumb"),
        UploadHeaders),
    request_body(content((MediaBytes = "image/*"), (MediaBytes = "video/*"), (MediaBytes = "audio/*")),
        description = "The raw bytes (not empty). Content-Type must be an image/*, video/* or audio/* MIME type, such as image/jpeg."),
    responses(
        (status = 201, description = "Stored.", body = VariantView),
        (status = 200, description = "Stored, replacing an earlier variant.", body = VariantView),
        (status = 403, description = "Vault+ is disabled for the connection.", body = ErrorBody),
        (status = 409, description = "The connection was purged during the upload.", body = ErrorBody),
        (status = 413, description = "Larger than --max-upload-bytes.", body = ErrorBody),
        (status = 429, description = "The connection already has --max-uploads-per-connection uploads in progress (RATE_LIMIT_EXCEEDED).", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait before trying again"))),
        (status = 507, description = "No room: the blob store's free space less the uploads in progress would fall below --min-free-bytes (refused up front for a declared length, cut mid-body for a chunked one), or the connection's storageLimitBytes is reached under block_new.", body = ErrorBody),
    ),
    security(("ApiKey" = [])))]
pub async fn put_variant(
    State(svc): State<VaultService>,
    Auth(who): Auth,
    ConnectionHeader(conn): ConnectionHeader,
    PathParams((raw_media, raw_label)): PathParams<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<VariantView>)> {
    let media_id = media_id(&raw_media)?;
    let label = label(&raw_label)?;
    let duration = header_str(&headers, "x-media-duration")?
        .map(|raw| {
            raw.trim().parse::<f64>().map_err(|_| {
                ApiError::bad_request(format!(
                    "x-media-duration must be a number of seconds, got {raw:?}"
                ))
            })
        })
        .transpose()?;
    let declared_len =
        header_str(&headers, header::CONTENT_LENGTH.as_str())?.and_then(|v| v.parse::<u64>().ok());
    let content_type = header_str(&headers, header::CONTENT_TYPE.as_str())?.map(str::to_owned);
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let (replaced, view) = svc
        .upload(
            &who,
            &conn,
            UploadRequest {
                media_id,
                label,
                content_type,
                duration,
                declared_len,
                body: Box::pin(stream),
            },
        )
        .await?;
    let status = if replaced {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(view)))
}
