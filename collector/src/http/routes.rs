//! Every route is declared once, with who may call it and what it does: [`Routes`] builds the
//! axum router from those declarations and keeps them, and [`openapi`] writes the OpenAPI
//! document served at `GET /api/docs/openapi.json` from the same list. A route cannot be
//! added without its description, and the document cannot name a route the router lacks.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::MethodRouter;
use serde_json::{Map, Value, json};

use super::AppState;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: a site's pages, a login form, a signed link. `why` says why that is safe.
    Open(&'static str),
    /// Any logged-in dashboard user (a session cookie); a change also needs the CSRF token.
    Session,
    /// An admin's session, with the CSRF token when it changes something.
    Admin,
    /// A Stats API key, a session or a shared link, for a site it may read.
    Reader,
    /// A Sites API key with this scope (`sites:read` or `sites:provision`); a Stats API
    /// key may read its own site.
    SitesKey(&'static str),
    /// The bearer token `metrics_token` names, when one is set.
    MetricsToken,
}

/// One method of one path.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub method: Method,
    /// As axum writes it: `{name}` for a parameter, `{*name}` for the rest of the path.
    pub path: &'static str,
    pub access: Access,
    /// The OpenAPI tag: the area the route belongs to.
    pub tag: &'static str,
    pub summary: &'static str,
}

impl RouteDoc {
    /// Whether the route may change something.
    pub fn writes(&self) -> bool {
        self.method != Method::GET
    }
}

/// A router under construction, with the declaration of each route.
pub struct Routes {
    router: Router<AppState>,
    docs: Vec<RouteDoc>,
    tag: &'static str,
}

macro_rules! method {
    ($name:ident, $method:ident, $make:path) => {
        pub fn $name<H, T>(
            self,
            path: &'static str,
            access: Access,
            summary: &'static str,
            handler: H,
        ) -> Self
        where
            H: Handler<T, AppState>,
            T: 'static,
        {
            self.add(Method::$method, path, access, summary, $make(handler))
        }
    };
}

impl Routes {
    /// An empty set whose routes are tagged `tag` until [`Self::tag`] changes it.
    pub fn new(tag: &'static str) -> Self {
        Self {
            router: Router::new(),
            docs: Vec::new(),
            tag,
        }
    }

    /// The routes declared after this are tagged `tag`.
    pub fn tag(mut self, tag: &'static str) -> Self {
        self.tag = tag;
        self
    }

    method!(get, GET, axum::routing::get);
    method!(post, POST, axum::routing::post);
    method!(put, PUT, axum::routing::put);
    method!(delete, DELETE, axum::routing::delete);

    fn add(
        mut self,
        method: Method,
        path: &'static str,
        access: Access,
        summary: &'static str,
        route: MethodRouter<AppState>,
    ) -> Self {
        // axum merges a second method of the same path into the first.
        self.router = self.router.route(path, route);
        self.docs.push(RouteDoc {
            method,
            path,
            access,
            tag: self.tag,
            summary,
        });
        self
    }

    /// Wraps the routes declared so far (a layer).
    pub fn wrap(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.docs.extend(other.docs);
        self
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }

    pub fn docs(&self) -> &[RouteDoc] {
        &self.docs
    }
}

/// The OpenAPI 3.1 document of `docs`.
pub fn openapi(docs: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for doc in docs {
        let path = doc.path.replace("{*", "{");
        let entry = paths
            .entry(path.clone())
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("a path item is an object");
        let mut op = json!({
            "tags": [doc.tag],
            "summary": doc.summary,
            "operationId": operation_id(&doc.method, doc.path),
            "responses": responses(doc),
        });
        let params = parameters(doc.path);
        if !params.is_empty() {
            op["parameters"] = Value::Array(params);
        }
        match doc.access {
            Access::Open(why) => {
                op["security"] = json!([]);
                op["description"] = json!(format!("Open: {why}."));
            }
            Access::Session => {
                op["security"] = json!([{"session": [], "csrf": []}]);
            }
            Access::Admin => {
                op["security"] = json!([{"session": [], "csrf": []}]);
                op["description"] = json!("Admins only.");
            }
            Access::Reader => {
                op["security"] = json!([{"apiKey": []}, {"session": []}, {"sharedLink": []}]);
            }
            Access::SitesKey(scope) => {
                op["security"] = json!([{"apiKey": [scope]}]);
                op["description"] = json!(format!(
                    "A Sites API key with the `{scope}` scope (`sites:provision` includes `sites:read`); a Stats API key reads its own site."
                ));
            }
            Access::MetricsToken => {
                op["security"] = json!([{"metricsToken": []}, {}]);
                op["description"] =
                    json!("Needs the bearer token `metrics_token` names, when one is set.");
            }
        }
        if doc.path == "/api/v2/query" {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Query"}}}});
        } else if doc.writes() && doc.method != Method::DELETE {
            op["requestBody"] = json!({"required": false, "content": {"application/json": {
                "schema": {"type": "object"}}}});
        }
        entry.insert(doc.method.as_str().to_ascii_lowercase(), op);
    }
    let mut query = crate::query::schema::schema();
    if let Some(o) = query.as_object_mut() {
        o.remove("$schema");
        o.remove("$id");
    }
    // Its references point into itself; here it sits under components.
    rebase_refs(&mut query, "#/$defs/", "#/components/schemas/Query/$defs/");
    let mut seen = std::collections::HashSet::new();
    let tags: Vec<&str> = docs
        .iter()
        .map(|d| d.tag)
        .filter(|t| seen.insert(*t))
        .collect();
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Footfall",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every route of this Footfall server, written from the router's own declarations.",
        },
        "tags": tags.iter().map(|t| json!({"name": t})).collect::<Vec<_>>(),
        "paths": paths,
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "http", "scheme": "bearer",
                    "description": "An API key (`ff_…`): a Stats API key for one site, or a Sites API key with scopes."},
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE},
                "csrf": {"type": "apiKey", "in": "header", "name": "X-CSRF-Token",
                    "description": "The session's CSRF token, on every request that changes something."},
                "sharedLink": {"type": "apiKey", "in": "cookie", "name": super::auth::SHARE_COOKIE},
                "metricsToken": {"type": "http", "scheme": "bearer"},
            },
            "schemas": {
                "Query": query,
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}},
            },
        },
    })
}

/// Rewrites every `$ref` that starts with `from` to start with `to`.
fn rebase_refs(v: &mut Value, from: &str, to: &str) {
    match v {
        Value::Object(o) => {
            for (k, x) in o.iter_mut() {
                match x {
                    Value::String(r) if k == "$ref" && r.starts_with(from) => {
                        *r = format!("{to}{}", &r[from.len()..]);
                    }
                    _ => rebase_refs(x, from, to),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| rebase_refs(x, from, to)),
        _ => {}
    }
}

/// `getApiSitesByDomainGoals`-like ids, unique per method and path.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for part in path.split(['/', '.', '-', ':']).filter(|p| !p.is_empty()) {
        let (by, word) = match part.strip_prefix('{') {
            Some(p) => (true, p.trim_start_matches('*').trim_end_matches('}')),
            None => (false, part),
        };
        if by {
            id.push_str("By");
        }
        let mut chars = word.chars();
        if let Some(c) = chars.next() {
            id.extend(c.to_uppercase());
            id.push_str(chars.as_str());
        }
    }
    if path == "/" {
        id.push_str("Root");
    }
    id
}

fn parameters(path: &str) -> Vec<Value> {
    path.split('/')
        .filter_map(|p| p.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| {
            let name = name.trim_start_matches('*');
            json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}})
        })
        .collect()
}

fn responses(doc: &RouteDoc) -> Value {
    let error = json!({"description": "refused; the body says why",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut out = json!({"200": {"description": "done"}});
    match doc.access {
        Access::Open(_) => {}
        Access::MetricsToken => out["401"] = error.clone(),
        _ => {
            out["401"] = error.clone();
            out["403"] = error.clone();
        }
    }
    if doc.writes() || doc.path.contains('{') {
        out["400"] = error.clone();
    }
    if doc.path.contains('{') {
        out["404"] = error;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_read_as_the_path() {
        assert_eq!(
            operation_id(&Method::DELETE, "/api/sites/{domain}/goals/{id}"),
            "deleteApiSitesByDomainGoalsById"
        );
        assert_eq!(operation_id(&Method::GET, "/"), "getRoot");
        assert_eq!(
            operation_id(&Method::GET, "/api/docs/openapi.json"),
            "getApiDocsOpenapiJson"
        );
    }

    #[test]
    fn the_query_schema_refers_within_the_document() {
        let doc = openapi(&[]);
        let text = doc.to_string();
        assert!(!text.contains("\"#/$defs/"), "{text}");
        assert!(text.contains("#/components/schemas/Query/$defs/filter"));
    }

    #[test]
    fn path_parameters_are_declared() {
        let p = parameters("/sites/{*rest}");
        assert_eq!(p[0]["name"], "rest");
        assert!(parameters("/api/v2/query").is_empty());
    }
}
