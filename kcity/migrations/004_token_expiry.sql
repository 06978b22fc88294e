-- Issue #17: API tokens expire (DESIGN §8, default 90 days). Tokens issued before this
-- migration get 90 days from their creation, like a new token.
ALTER TABLE api_tokens ADD COLUMN IF NOT EXISTS expires_at timestamptz;
UPDATE api_tokens SET expires_at = created_at + interval '90 days' WHERE expires_at IS NULL;
ALTER TABLE api_tokens ALTER COLUMN expires_at SET DEFAULT now() + interval '90 days';
ALTER TABLE api_tokens ALTER COLUMN expires_at SET NOT NULL;

