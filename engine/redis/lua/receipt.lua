-- The receipt of a delivered action, while it is honoured (receipts.lua).
--
-- KEYS  1 the earlier versions' receipts hash  2.. the ring of receipt hashes
-- ARGV  1 idempotency key
-- Returns the receipt, or nil.
return find_receipt(live_receipts(KEYS, receipts_now()), ARGV[1])
