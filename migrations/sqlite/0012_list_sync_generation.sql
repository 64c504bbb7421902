-- A sync reads its listing page by page, each page in its own transaction.
-- Each sync takes the next generation of its list and marks every member
-- it lists with it; its last step removes the baseline members it did not
-- mark. A generation only grows, so a sync killed midway leaves marks that
-- the next sync's removal step treats like any other unseen member.
ALTER TABLE lists ADD COLUMN sync_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE list_members ADD COLUMN seen_generation INTEGER NOT NULL DEFAULT 0;
