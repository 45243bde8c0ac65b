//! The catalog: `PUT/GET/DELETE /v1/items/{item_id}`, `POST /v1/items`.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::{
    error::{ApiError, ApiResult, ErrorDetail, ErrorEnvelope},
    json::JsonBody,
    AppState,
};
use crate::{
    domain::{
        fields::{Fields, Violation},
        Category, ItemId,
    },
    store::{Item, ItemUpsert},
};

/// Most items one `POST /v1/items` may carry, like an event batch.
const MAX_ITEMS: usize = 10_000;
const MAX_TITLE_CHARS: usize = 1_000;
const MAX_CATEGORIES: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemOut {
    pub item_id: String,
    pub title: Option<String>,
    pub categories: Vec<String>,
    pub available: bool,
    #[schema(value_type = Object)]
    pub attributes: Value,
    pub updated_at: String,
}

impl From<Item> for ItemOut {
    fn from(i: Item) -> Self {
        Self {
            item_id: i.item_id,
            title: i.title,
            categories: i.categories,
            available: i.available,
            attributes: i.attributes,
            updated_at: i
                .updated_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Upserted {
    pub upserted: usize,
}

pub fn read_router() -> Router<AppState> {
    Router::new().route("/v1/items/{item_id}", get(get_item))
}

pub fn admin_router() -> Router<AppState> {
    Router::new().route("/v1/items", post(post_items)).route(
        "/v1/items/{item_id}",
        axum::routing::put(put_item).delete(delete_item),
    )
}

pub(super) fn item_id(raw: String) -> ApiResult<ItemId> {
    ItemId::parse(raw).map_err(|e| ApiError::parameter("item_id", e.to_string()))
}

/// Checks one catalog object; `path_id` is the id from `PUT`'s path.
fn parse_item(
    value: &Value,
    index: Option<usize>,
    path_id: Option<&ItemId>,
    errors: &mut Vec<Violation>,
) -> Option<ItemUpsert> {
    let known = ["item_id", "title", "categories", "available", "attributes"];
    let mut f = Fields::new(value, index, &known, errors)?;
    let item_id = match path_id {
        Some(id) => {
            let raw = f.opt_str("item_id");
            if raw.is_some_and(|r| r != id.as_str()) {
                f.fail("item_id", "differs from the item id in the path");
            }
            Some(id.clone())
        }
        None => {
            let raw = f.req_str("item_id");
            f.parsed("item_id", raw, |s| ItemId::parse(s))
        }
    };
    let title = f.opt_str("title").map(str::to_owned);
    if let Some(t) = &title {
        if t.chars().count() > MAX_TITLE_CHARS {
            f.fail(
                "title",
                format!("must be at most {MAX_TITLE_CHARS} characters"),
            );
        }
        if t.chars().any(char::is_control) {
            f.fail("title", "must not contain control characters");
        }
    }
    let mut categories = Vec::new();
    match f.get("categories") {
        None => {}
        Some(Value::Array(list)) if list.len() <= MAX_CATEGORIES => {
            for c in list {
                match c.as_str().map(Category::parse) {
                    Some(Ok(c)) => categories.push(c.into_inner()),
                    Some(Err(e)) => f.fail("categories", format!("each category {e}")),
                    None => f.fail("categories", "must be an array of strings"),
                }
            }
        }
        Some(Value::Array(_)) => {
            f.fail("categories", format!("at most {MAX_CATEGORIES} categories"))
        }
        Some(_) => f.fail("categories", "must be an array of strings"),
    }
    categories.sort();
    categories.dedup();
    let available = f.opt_bool("available").unwrap_or(true);
    let attributes = match f.get("attributes") {
        None => Value::Object(Default::default()),
        // PostgreSQL cannot store a NUL in text or JSON; refuse it on every backend alike.
        Some(v @ Value::Object(_)) if has_nul(v) => {
            f.fail("attributes", "must not contain the NUL character (\\u0000)");
            Value::Null
        }
        Some(v @ Value::Object(_)) => v.clone(),
        Some(_) => {
            f.fail("attributes", "must be a JSON object");
            Value::Null
        }
    };
    let ok = f.finish(errors);
    Some(ItemUpsert {
        item_id: item_id?,
        title,
        categories,
        available,
        attributes,
    })
    .filter(|_| ok)
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(has_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// The 422 of a refused item, from the rules it broke (`Violation`s) or the body's shape.
fn invalid(errors: Vec<impl Into<ErrorDetail>>) -> ApiError {
    ApiError::invalid(
        "invalid_item",
        "the item breaks a rule; nothing was stored",
        errors.into_iter().map(Into::into).collect(),
    )
}

#[utoipa::path(
    put, path = "/v1/items/{item_id}", tag = "catalog",
    params(("item_id" = super::schema::Id, Path)),
    request_body = super::schema::ItemPut,
    responses(
        (status = 200, body = ItemOut), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn put_item(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<ItemOut>> {
    let id = item_id(raw)?;
    let mut errors = Vec::new();
    let item = parse_item(&body, None, Some(&id), &mut errors).ok_or_else(|| invalid(errors))?;
    let item = state
        .serving
        .put_items(vec![item])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("upsert of one item returned none")))?;
    Ok(Json(item.into()))
}

#[utoipa::path(
    post, path = "/v1/items", tag = "catalog",
    request_body = super::schema::ItemsIn,
    responses(
        (status = 200, body = Upserted), (status = 400, body = ErrorEnvelope),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 413, body = ErrorEnvelope), (status = 415, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn post_items(
    State(state): State<AppState>,
    JsonBody(body): JsonBody,
) -> ApiResult<Json<Upserted>> {
    let Value::Array(values) = &body else {
        return Err(invalid(vec![ErrorDetail::new(
            None,
            "",
            "must be an array of items",
        )]));
    };
    if values.is_empty() || values.len() > MAX_ITEMS {
        return Err(invalid(vec![ErrorDetail::new(
            None,
            "",
            format!("an array of 1 to {MAX_ITEMS} items"),
        )]));
    }
    let mut errors = Vec::new();
    let items: Vec<ItemUpsert> = values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| parse_item(v, Some(i), None, &mut errors))
        .collect();
    if !errors.is_empty() {
        errors.truncate(100);
        return Err(invalid(errors));
    }
    let stored = state.serving.put_items(items).await?;
    Ok(Json(Upserted {
        upserted: stored.len(),
    }))
}

#[utoipa::path(
    get, path = "/v1/items/{item_id}", tag = "catalog",
    params(("item_id" = super::schema::Id, Path)),
    responses(
        (status = 200, body = ItemOut), (status = 401, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("api_key" = []))
)]
pub async fn get_item(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<ItemOut>> {
    let id = item_id(raw)?;
    let item =
        state.serving.item(&id).await?.ok_or_else(|| {
            ApiError::NotFound(format!("no item {:?} in the catalog", id.as_str()))
        })?;
    Ok(Json(item.into()))
}

#[utoipa::path(
    delete, path = "/v1/items/{item_id}", tag = "catalog",
    params(("item_id" = super::schema::Id, Path)),
    responses(
        (status = 204, description = "never recommended again; its events are kept"),
        (status = 401, body = ErrorEnvelope), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
        (status = 503, body = ErrorEnvelope),
    ),
    security((), ("admin_key" = []))
)]
pub async fn delete_item(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<StatusCode> {
    let id = item_id(raw)?;
    if !state.serving.delete_item(&id).await? {
        return Err(ApiError::NotFound(format!("no item {:?}", id.as_str())));
    }
    Ok(StatusCode::NO_CONTENT)
}
