-- Event ids written as canonical UUIDs (lowercase, hyphenated: what UUIDv4/v7 libraries print)
-- are kept as their 16 bytes instead of 36 characters of text, so the unique index that makes
-- event_id an idempotency key holds less than half the bytes per entry: fewer pages to read
-- and write back per batch, above all when random (v4) ids scatter across the whole index.
-- Any other id stays text. Only the canonical spelling is packed, so two ids that differ in any
-- character (an uppercase copy) stay two ids; a blob never equals a text in SQLite.
UPDATE events SET event_id = unhex(replace(event_id, '-', ''))
WHERE typeof(event_id) = 'text'
  AND length(event_id) = 36
  AND event_id GLOB '[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f]-[0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f][0-9a-f]';
