//! OpenAPI schemas for the rules the derived ones cannot state, so that the description says
//! exactly what is accepted (schemathesis holds the service to it: every request the
//! description allows must be accepted, and every one it forbids refused).

use utoipa::{
    openapi::{
        schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type},
        RefOr,
    },
    PartialSchema, ToSchema,
};

/// No control characters (Unicode category Cc, which is what `char::is_control` means).
pub const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$";

/// An id as the contract defines it: 1 to 256 characters, no control characters.
pub struct Id;

impl PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(crate::domain::MAX_ID_CHARS))
            .pattern(Some(NO_CONTROL))
            .description(Some("1 to 256 characters, no control characters"))
            .into()
    }
}

impl ToSchema for Id {}

/// A free-form JSON object whose strings and keys hold no NUL (PostgreSQL cannot store one).
pub struct Attributes;

const NO_NUL: &str = "^[^\\u0000]*$";

impl PartialSchema for Attributes {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(NO_NUL)),
            ))
            .additional_properties(Some(AttributeValue::schema()))
            .description(Some(
                "free-form JSON object; no NUL (\\u0000) in its keys or strings",
            ))
            .into()
    }
}

impl ToSchema for Attributes {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((AttributeValue::name().into(), AttributeValue::schema()));
    }
}

/// Any JSON value inside `attributes`: recursive, so it is referenced by name.
pub struct AttributeValue;

impl PartialSchema for AttributeValue {
    fn schema() -> RefOr<Schema> {
        let itself = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name("AttributeValue"));
        AnyOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(NO_NUL)),
            )
            .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([
                Type::Number,
                Type::Boolean,
                Type::Null,
            ])))
            .item(ArrayBuilder::new().items(itself()))
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property_names(Some(
                        ObjectBuilder::new()
                            .schema_type(Type::String)
                            .pattern(Some(NO_NUL)),
                    ))
                    .additional_properties(Some(itself())),
            )
            .into()
    }
}

impl ToSchema for AttributeValue {}

/// What a person did: `view`, `click`, `add_to_cart` or `purchase`.
pub struct EventKind;

impl PartialSchema for EventKind {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(
                crate::domain::EventType::ALL.map(crate::domain::EventType::as_str),
            ))
            .into()
    }
}

impl ToSchema for EventKind {}

/// Takes a derived object schema (inline) to adjust it.
fn object_of<T: PartialSchema>() -> utoipa::openapi::schema::Object {
    match T::schema() {
        RefOr::T(Schema::Object(object)) => object,
        _ => unreachable!("a derived struct schema is an inline object"),
    }
}

/// The body of `PUT /v1/items/{item_id}`: the item's fields; its id is the path's (an
/// `item_id` in the body is allowed only if it is the same, which a schema cannot say).
pub struct ItemPut;

impl PartialSchema for ItemPut {
    fn schema() -> RefOr<Schema> {
        let mut object = object_of::<ItemIn>();
        object.properties.remove("item_id");
        object.required.retain(|r| r != "item_id");
        Schema::Object(object).into()
    }
}

impl ToSchema for ItemPut {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ItemIn as ToSchema>::schemas(schemas);
    }
}

/// The body of `POST /v1/items`: 1 to 10,000 items, each with its `item_id`.
pub struct ItemsIn;

impl PartialSchema for ItemsIn {
    fn schema() -> RefOr<Schema> {
        let mut object = object_of::<ItemIn>();
        // Required, and so not null (null counts as absent).
        object.required.push("item_id".into());
        object.properties.insert("item_id".into(), Id::schema());
        ArrayBuilder::new()
            .items(RefOr::T(Schema::Object(object)))
            .min_items(Some(1))
            .max_items(Some(10_000))
            .into()
    }
}

impl ToSchema for ItemsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ItemIn as ToSchema>::schemas(schemas);
    }
}

/// The body of `POST /v1/events`: one event, or an array of 1 to 10,000.
pub struct EventsIn;

impl PartialSchema for EventsIn {
    fn schema() -> RefOr<Schema> {
        let event = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name("EventIn"));
        utoipa::openapi::schema::OneOfBuilder::new()
            .item(event())
            .item(
                ArrayBuilder::new()
                    .items(event())
                    .min_items(Some(1))
                    .max_items(Some(crate::domain::events::MAX_BATCH)),
            )
            .into()
    }
}

impl ToSchema for EventsIn {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("EventIn".into(), <EventIn as PartialSchema>::schema()));
        <EventIn as ToSchema>::schemas(schemas);
    }
}

/// One event as a shop posts it.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body for OpenAPI; `domain::events` parses it field by field
pub struct EventIn {
    /// Who acted (1-256 characters, no control characters).
    #[schema(value_type = Id)]
    user_id: String,
    /// On what.
    #[schema(value_type = Id)]
    item_id: String,
    #[schema(value_type = EventKind, example = "purchase")]
    r#type: crate::domain::EventType,
    /// RFC 3339; default now; at most 5 minutes ahead of the server's clock.
    #[schema(format = DateTime)]
    timestamp: Option<String>,
    /// Idempotency key: an event whose `event_id` was already stored is not stored again.
    #[schema(value_type = Option<Id>)]
    event_id: Option<String>,
    /// The recommendation response that showed this item.
    #[schema(value_type = Option<Id>)]
    recommendation_id: Option<String>,
}

/// A catalog entry as a shop writes it; every field optional.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body for OpenAPI; `items::parse_item` reads it field by field
pub struct ItemIn {
    /// Required in `POST /v1/items`, taken from the path in `PUT`.
    #[schema(value_type = Option<Id>)]
    item_id: Option<String>,
    /// At most 1,000 characters, no control characters.
    #[schema(max_length = 1000, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")]
    title: Option<String>,
    /// At most 100, each 1 to 256 characters without control characters.
    #[schema(value_type = Option<Vec<Id>>, max_items = 100)]
    categories: Option<Vec<String>>,
    /// Default true; an unavailable item is never recommended.
    available: Option<bool>,
    /// Free-form JSON object.
    #[schema(value_type = Option<Attributes>)]
    attributes: Option<serde_json::Value>,
}
