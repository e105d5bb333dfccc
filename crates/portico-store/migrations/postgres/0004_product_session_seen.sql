-- Product sessions as the account page and the admin API show them (issue 4): when and from where
-- each was last used (updated at each authorization in it).
ALTER TABLE product_sessions ADD COLUMN last_seen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE product_sessions ADD COLUMN ip TEXT NOT NULL DEFAULT '';
ALTER TABLE product_sessions ADD COLUMN user_agent TEXT NOT NULL DEFAULT '';
