-- A server LoRA made by /lora train keeps its training job (who, when, steps and cost are
-- read from it); NULL for the entries moderators add by hand.
ALTER TABLE guild_loras ADD COLUMN job_id BIGINT;
