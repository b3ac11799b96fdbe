//! RabbitMQ's list paging for the management API: `?page=&page_size=&name=&use_regex=&sort=
//! &sort_reverse=`. Without `page` a list is the plain array it always was; with it the answer
//! is `{"items", "page", "page_size", "page_count", "filtered_count", "item_count",
//! "total_count"}`, so a UI with thousands of queues fetches one page at a time.

use crate::error::{ApiError, ApiResult};
use serde::Deserialize;
use serde_json::{json, Value};
use std::cmp::Ordering;

/// The largest page RabbitMQ serves.
const MAX_PAGE_SIZE: usize = 500;

#[derive(Deserialize, Default)]
pub struct ListQuery {
    page: Option<String>,
    page_size: Option<String>,
    name: Option<String>,
    use_regex: Option<String>,
    sort: Option<String>,
    sort_reverse: Option<String>,
}

fn bool_param(v: &Option<String>, name: &str) -> ApiResult<bool> {
    match v.as_deref() {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "{name} must be true or false, not '{other}'"
        ))),
    }
}

fn usize_param(v: &Option<String>, name: &str, default: usize) -> ApiResult<usize> {
    match v.as_deref() {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| ApiError::bad_request(format!("{name} must be a positive integer"))),
    }
}

/// A dotted field path (`message_stats.publish_details.rate`) inside an item.
fn field<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.')
        .fold(v, |v, k| v.get(k).unwrap_or(&Value::Null))
}

fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .partial_cmp(&y.as_f64().unwrap_or(0.0))
            .unwrap_or(Ordering::Equal),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        // Missing values (null) sort first, as RabbitMQ does.
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

/// Filters, sorts and pages `items` as the query asks; a plain array when no `page` is given
/// (filtering and sorting still apply).
pub fn apply(mut items: Vec<Value>, q: &ListQuery) -> ApiResult<Value> {
    let total = items.len();
    if let Some(name) = q.name.as_deref().filter(|n| !n.is_empty()) {
        if bool_param(&q.use_regex, "use_regex")? {
            let re = regex::RegexBuilder::new(name)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| ApiError::bad_request(format!("bad regex: {e}")))?;
            items.retain(|v| re.is_match(field(v, "name").as_str().unwrap_or("")));
        } else {
            let needle = name.to_lowercase();
            items.retain(|v| {
                field(v, "name")
                    .as_str()
                    .is_some_and(|n| n.to_lowercase().contains(&needle))
            });
        }
    }
    if let Some(sort) = q.sort.as_deref().filter(|s| !s.is_empty()) {
        items.sort_by(|a, b| compare(field(a, sort), field(b, sort)));
    }
    if bool_param(&q.sort_reverse, "sort_reverse")? {
        items.reverse();
    }
    if q.page.is_none() {
        return Ok(Value::Array(items));
    }
    let page = usize_param(&q.page, "page", 1)?;
    let page_size = usize_param(&q.page_size, "page_size", 100)?;
    if page_size > MAX_PAGE_SIZE {
        return Err(ApiError::bad_request(format!(
            "page_size must be at most {MAX_PAGE_SIZE}"
        )));
    }
    let filtered = items.len();
    let page_count = filtered.div_ceil(page_size).max(1);
    if page > page_count {
        return Err(ApiError::bad_request(format!(
            "page {page} is beyond the last page ({page_count})"
        )));
    }
    let start = (page - 1) * page_size;
    let page_items: Vec<Value> = items.into_iter().skip(start).take(page_size).collect();
    Ok(json!({
        "item_count": page_items.len(),
        "items": page_items,
        "page": page,
        "page_size": page_size,
        "page_count": page_count,
        "filtered_count": filtered,
        "total_count": total,
    }))
}
