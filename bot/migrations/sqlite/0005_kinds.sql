-- Jobs of more than one kind: an image from a prompt ('imagine'), an upscale of a posted image
-- ('upscale'), a LoRA training ('train'). Every older row is an 'imagine'. `credits` is what
-- the job reserved (NULL for older rows: one per image asked for, as it was then).
ALTER TABLE generations ADD COLUMN kind TEXT NOT NULL DEFAULT 'imagine'
    CHECK (kind IN ('imagine', 'upscale', 'train'));
ALTER TABLE generations ADD COLUMN credits INTEGER CHECK (credits >= 0);
CREATE INDEX generations_by_kind ON generations (kind, id);
