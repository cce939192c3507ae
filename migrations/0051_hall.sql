-- Service hall (办事大厅): the matters catalogue, applications and their history, held
-- out-of-order department events, ratings (好差评) with follow-ups, bundles (一件事).
-- Forms are AES-GCM encrypted (they carry ID numbers and phones); nothing else here is PII.

CREATE TABLE hall_matters (
    code                     text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    version                  integer NOT NULL CHECK (version > 0),
    name                     text NOT NULL,
    department               text NOT NULL,
    applicant_type           text NOT NULL DEFAULT 'person',
    required_level           text NOT NULL CHECK (required_level IN ('L2', 'L3', 'L4')),
    time_limit_working_days  integer NOT NULL CHECK (time_limit_working_days > 0),
    fee_cents                integer NOT NULL DEFAULT 0 CHECK (fee_cents >= 0),
    form                     jsonb NOT NULL,
    active                   boolean NOT NULL DEFAULT true,
    created_at               timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code, version)
);

CREATE SEQUENCE hall_application_numbers;

CREATE TABLE hall_applications (
    id                uuid PRIMARY KEY,
    number            text NOT NULL UNIQUE,
    account_id        uuid NOT NULL,
    region_code       text,                      -- the citizen's registered district, for staff queues
    matter_code       text NOT NULL,
    matter_version    integer NOT NULL,
    department        text NOT NULL,
    status            text NOT NULL,
    form_enc          bytea NOT NULL,
    request_hash      bytea,                     -- of the submitted body, for idempotent replays
    idempotency_key   text,
    case_id           text,
    submit_failed     boolean NOT NULL DEFAULT false,  -- retry budget spent or refused for good
    resubmissions     integer NOT NULL DEFAULT 0,
    bundle_id         uuid,
    submitted_at      timestamptz NOT NULL,
    due_at            timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    FOREIGN KEY (matter_code, matter_version) REFERENCES hall_matters (code, version)
);
CREATE UNIQUE INDEX hall_applications_idempotency ON hall_applications (account_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE UNIQUE INDEX hall_applications_bundle_step ON hall_applications (bundle_id, matter_code)
    WHERE bundle_id IS NOT NULL;
CREATE INDEX hall_applications_mine ON hall_applications (account_id, submitted_at DESC, id DESC);
CREATE INDEX hall_applications_queue ON hall_applications (region_code, submitted_at DESC, id DESC);

-- Every status an application went through; a department event's row carries its event_id,
-- which is unique: a repeated event can never add a second row.
CREATE TABLE hall_application_history (
    id              bigserial PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES hall_applications (id) ON DELETE CASCADE,
    event_id        text UNIQUE,
    status          text NOT NULL,
    at              timestamptz NOT NULL,
    note            text,
    source          text NOT NULL CHECK (source IN ('citizen', 'department', 'onecity'))
);
CREATE INDEX hall_application_history_app ON hall_application_history (application_id, at, id);

-- Events that are not legal yet but can become legal (an approved before its under_review).
CREATE TABLE hall_held_events (
    event_id        text PRIMARY KEY,
    application_id  uuid NOT NULL REFERENCES hall_applications (id) ON DELETE CASCADE,
    status          text NOT NULL,
    at              timestamptz NOT NULL,
    note            text,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hall_held_events_app ON hall_held_events (application_id, at);

CREATE TABLE hall_ratings (
    application_id  uuid PRIMARY KEY REFERENCES hall_applications (id) ON DELETE CASCADE,
    account_id      uuid NOT NULL,
    department      text NOT NULL,
    matter_code     text NOT NULL,
    score           integer NOT NULL CHECK (score BETWEEN 1 AND 5),
    comment         text,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX hall_ratings_department ON hall_ratings (department);

-- A low score (≤ 2) opens a follow-up for the department's staff.
CREATE TABLE hall_followups (
    id              uuid PRIMARY KEY,
    application_id  uuid NOT NULL UNIQUE REFERENCES hall_applications (id) ON DELETE CASCADE,
    department      text NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE hall_bundle_templates (
    code        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    name        text NOT NULL,
    steps       jsonb NOT NULL,   -- [{matter, after: [matter...], map?: {step field: bundle field}, set?: {field: value}}]
    form        jsonb NOT NULL,   -- {fields: [...]}, feeds every step
    active      boolean NOT NULL DEFAULT true,
    PRIMARY KEY (code, version)
);

CREATE TABLE hall_bundles (
    id                uuid PRIMARY KEY,
    account_id        uuid NOT NULL,
    region_code       text,
    template_code     text NOT NULL,
    template_version  integer NOT NULL,
    status            text NOT NULL CHECK (status IN ('running', 'completed', 'needs_attention')),
    form_enc          bytea NOT NULL,
    request_hash      bytea NOT NULL,
    idempotency_key   text NOT NULL,
    created_at        timestamptz NOT NULL,
    updated_at        timestamptz NOT NULL,
    FOREIGN KEY (template_code, template_version) REFERENCES hall_bundle_templates (code, version)
);
CREATE UNIQUE INDEX hall_bundles_idempotency ON hall_bundles (account_id, idempotency_key);

-- The catalogue. Field "prefill" names where OneCity already knows the value.
INSERT INTO hall_matters (code, version, name, department, required_level, time_limit_working_days, fee_cents, form) VALUES
('birth-medical-certificate', 1, '出生医学证明办理', 'health', 'L3', 5, 0,
 '{"fields": [
   {"name": "parent_name", "label": "申请人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "申请人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "新生儿姓名", "type": "text", "required": true},
   {"name": "child_birth_date", "label": "出生日期", "type": "date", "required": true},
   {"name": "hospital", "label": "出生医院", "type": "text", "required": true}
 ]}'),
('newborn-household-registration', 1, '新生儿出生户口登记', 'hukou', 'L3', 7, 0,
 '{"fields": [
   {"name": "parent_name", "label": "申请人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "申请人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "新生儿姓名", "type": "text", "required": true},
   {"name": "child_birth_date", "label": "出生日期", "type": "date", "required": true},
   {"name": "relationship", "label": "与户主关系", "type": "choice", "required": true, "choices": ["子", "女"]}
 ]}'),
('medical-insurance-enrolment', 1, '城乡居民医疗保险参保登记', 'socsec', 'L3', 10, 0,
 '{"fields": [
   {"name": "parent_name", "label": "代办人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "代办人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "参保人姓名", "type": "text", "required": true},
   {"name": "child_birth_date", "label": "出生日期", "type": "date", "required": true}
 ]}'),
('social-security-card', 1, '社会保障卡申领', 'socsec', 'L3', 15, 0,
 '{"fields": [
   {"name": "parent_name", "label": "代办人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "代办人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "持卡人姓名", "type": "text", "required": true},
   {"name": "mailing_address", "label": "邮寄地址", "type": "text", "required": false}
 ]}'),
('primary-school-enrolment', 1, '小学一年级入学报名', 'education', 'L3', 20, 0,
 '{"fields": [
   {"name": "parent_name", "label": "监护人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "监护人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "学生姓名", "type": "text", "required": true},
   {"name": "child_id_number", "label": "学生身份证号", "type": "id_number", "required": true},
   {"name": "school_district", "label": "学区", "type": "choice", "required": true, "choices": ["芙蓉区", "天心区", "岳麓区", "开福区", "雨花区"]}
 ]}'),
('household-registration-proof', 1, '户籍证明开具', 'hukou', 'L3', 3, 0,
 '{"fields": [
   {"name": "name", "label": "姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "id_number", "label": "身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "purpose", "label": "用途", "type": "choice", "required": true, "choices": ["入学", "就业", "其他"]}
 ]}'),
('vaccination-record-copy', 1, '预防接种记录查询打印', 'health', 'L2', 3, 0,
 '{"fields": [
   {"name": "name", "label": "姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"}
 ]}'),
('social-security-card-replacement', 1, '社会保障卡补换', 'socsec', 'L3', 10, 2000,
 '{"fields": [
   {"name": "name", "label": "姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "id_number", "label": "身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "card_no", "label": "原社保卡号", "type": "text", "required": true, "prefill": "socsec.card_no"},
   {"name": "reason", "label": "补换原因", "type": "choice", "required": true, "choices": ["遗失", "损坏", "信息变更"]}
 ]}'),
('transfer-school-application', 1, '义务教育阶段转学申请', 'education', 'L3', 10, 0,
 '{"fields": [
   {"name": "parent_name", "label": "监护人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "child_name", "label": "学生姓名", "type": "text", "required": true},
   {"name": "from_school", "label": "原学校", "type": "text", "required": true},
   {"name": "to_school", "label": "转入学校", "type": "text", "required": true}
 ]}');

INSERT INTO hall_bundle_templates (code, version, name, steps, form) VALUES
('newborn', 1, '出生一件事',
 '[{"matter": "birth-medical-certificate", "after": []},
   {"matter": "newborn-household-registration", "after": ["birth-medical-certificate"]},
   {"matter": "medical-insurance-enrolment", "after": ["newborn-household-registration"]},
   {"matter": "social-security-card", "after": ["newborn-household-registration"]}]',
 '{"fields": [
   {"name": "parent_name", "label": "申请人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "申请人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "新生儿姓名", "type": "text", "required": true},
   {"name": "child_birth_date", "label": "出生日期", "type": "date", "required": true},
   {"name": "hospital", "label": "出生医院", "type": "text", "required": true},
   {"name": "relationship", "label": "与户主关系", "type": "choice", "required": true, "choices": ["子", "女"]},
   {"name": "mailing_address", "label": "社保卡邮寄地址", "type": "text", "required": false}
 ]}'),
('school-enrolment', 1, '入学一件事',
 '[{"matter": "household-registration-proof", "after": [],
    "map": {"name": "parent_name", "id_number": "parent_id_number"}, "set": {"purpose": "入学"}},
   {"matter": "primary-school-enrolment", "after": ["household-registration-proof"]}]',
 '{"fields": [
   {"name": "parent_name", "label": "监护人姓名", "type": "text", "required": true, "prefill": "registry.name"},
   {"name": "parent_id_number", "label": "监护人身份证号", "type": "id_number", "required": true, "prefill": "registry.id_number"},
   {"name": "phone", "label": "联系电话", "type": "phone", "required": true, "prefill": "account.phone"},
   {"name": "child_name", "label": "学生姓名", "type": "text", "required": true},
   {"name": "child_id_number", "label": "学生身份证号", "type": "id_number", "required": true},
   {"name": "school_district", "label": "学区", "type": "choice", "required": true, "choices": ["芙蓉区", "天心区", "岳麓区", "开福区", "雨花区"]}
 ]}');
