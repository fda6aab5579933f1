-- The outbox also carries password reset codes and username reminders.
ALTER TABLE outbox DROP CONSTRAINT outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check
    CHECK (kind IN ('credentialing', 'email_verification', 'password_reset', 'username_reminder',
                    'registration_blocked', 'accounts_consolidated'));
