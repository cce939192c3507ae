-- The regions in which a partner (an OAuth client with the venues:write scope) may register
-- venues: a division code covers itself and every code below it (110101 covers 110101001).
-- A client without a row here registers no venue. Set with `onecity codes venue regions`.
CREATE TABLE partner_venue_regions (
    client_id    text NOT NULL REFERENCES oauth_clients (client_id) ON DELETE CASCADE,
    region_code  text NOT NULL CHECK (region_code ~ '^([0-9]{6}|[0-9]{9}|[0-9]{12})$'),
    set_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (client_id, region_code)
);

-- Migration path: a partner client that already registered venues keeps registering in the
-- regions of those venues; any other client with venues:write must be configured explicitly.
INSERT INTO partner_venue_regions (client_id, region_code)
SELECT DISTINCT v.owner_id, v.region_code
FROM venues v JOIN oauth_clients c ON c.client_id = v.owner_id
WHERE v.owner_type = 'partner';
