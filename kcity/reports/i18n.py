"""The words of the evaluation reports in English and Korean.

Evaluators sign the report in English, the ministry reads it in Korean; one table keeps
the two in step (a key missing a language fails at import, not in a printed report).
Numbers, ids and the analytics' own strings (method names, formulas) are not translated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

LANGS: Final = ("en", "ko")

_TEXT: Final[dict[str, tuple[str, str]]] = {
    # --- the firm's console (kcity/api/console) ---------------------------------------
    "c_console": ("Firm console", "기업 콘솔"),
    "c_skip": ("Skip to content", "본문으로 건너뛰기"),
    "c_language": ("Language", "언어"),
    "c_signin": ("Sign in", "로그인"),
    "c_signout": ("Sign out", "로그아웃"),
    "c_token": ("API token", "API 토큰"),
    "c_token_help": (
        "An operator or evaluator token (kcity tokens create).",
        "운영사 또는 평가자 토큰 (kcity tokens create 로 발급).",
    ),
    "c_bad_token": ("Unknown, revoked or expired token.", "알 수 없거나 폐기·만료된 토큰입니다."),
    "c_viewer_refused": (
        "This console is for operators and evaluators.",
        "이 콘솔은 운영사와 평가자 전용입니다.",
    ),
    "c_role": ("Signed in as", "로그인 역할"),
    "c_role_admin": ("admin", "관리자"),
    "c_role_operator": ("operator", "운영사"),
    "c_role_evaluator": ("evaluator", "평가자"),
    "c_pilots": ("Pilots", "실증 사업 목록"),
    "c_overview": ("Overview", "개요"),
    "c_devices": ("Devices", "장치 목록"),
    "c_dead_letters": ("Rejected data", "거부된 데이터"),
    "c_commands": ("Commands", "원격 명령"),
    "c_command": ("Command", "명령"),
    "c_created": ("Created", "생성 시각"),
    "c_closed": ("Closed", "종료 시각"),
    "c_cmd_queued": ("queued", "대기"),
    "c_cmd_sent": ("sent", "전송됨"),
    "c_cmd_acked": ("acknowledged", "수행 완료"),
    "c_cmd_rejected": ("rejected by the device", "장치가 거부"),
    "c_cmd_expired": ("expired", "만료"),
    "c_devices_online": ("Devices online / registered", "접속 장치 / 등록 장치"),
    "c_silent_count": ("Silent devices", "무응답 장치"),
    "c_completeness_yesterday": ("Completeness yesterday", "어제 데이터 완전성"),
    "c_completeness_today": ("Completeness today", "오늘 데이터 완전성"),
    "c_headline": ("Headline figure", "대표 지표"),
    "c_savings": ("Verified savings", "검증 절감량"),
    "c_coverage": ("Area / border coverage", "면적 / 국경선 커버리지"),
    "c_no_result": ("No analysis yet.", "아직 분석 결과가 없습니다."),
    "c_reports": ("Latest reports", "최근 보고서"),
    "c_window": ("Window", "기간"),
    "c_device": ("Device", "장치"),
    "c_kind": ("Kind", "종류"),
    "c_state": ("State", "상태"),
    "c_state_online": ("online", "접속"),
    "c_state_offline": ("offline", "접속 끊김"),
    "c_last_seen": ("Last seen", "최근 수신"),
    "c_never": ("never", "수신 없음"),
    "c_silent": ("Silent", "무응답"),
    "c_reporting": ("Reporting", "정상 수신"),
    "c_revoked": ("Revoked", "폐기됨"),
    "c_last_rejection": ("Last rejection", "최근 거부"),
    "c_rotate": ("Rotate credential", "자격 증명 교체"),
    "c_new_password": ("New MQTT password", "새 MQTT 비밀번호"),
    "c_shown_once": (
        "Shown only once: store it on the device now. The old password no longer works.",
        "이번 한 번만 표시됩니다. 지금 장치에 저장하세요. 이전 비밀번호는 더 이상 쓸 수 없습니다.",
    ),
    "c_username": ("Username", "사용자 이름"),
    "c_broker": ("Broker", "브로커"),
    "c_received": ("Received", "수신 시각"),
    "c_stage": ("Stage", "단계"),
    "c_reason": ("Reason", "사유"),
    "c_topic": ("Topic", "토픽"),
    "c_payload": ("Raw payload", "원본 페이로드"),
    "c_bytes": ("bytes", "바이트"),
    "c_truncated": ("truncated", "일부만 표시"),
    "c_nothing": ("Nothing here.", "항목이 없습니다."),
    "c_open": ("Open", "열기"),
    "c_filter": ("Filter", "필터"),
    "c_older": ("Older", "이전 항목"),
    "c_check": ("Check a corrected payload", "수정한 페이로드 검사"),
    "c_check_help": (
        "Runs the ingest service's own validation; nothing is stored.",
        "수집 서비스와 같은 검증을 실행하며, 아무것도 저장하지 않습니다.",
    ),
    "c_channel": ("Channel", "채널"),
    "c_run_check": ("Check", "검사"),
    "c_verdict": ("Verdict", "판정"),
    "c_accepted": ("Accepted", "수락"),
    "c_rejected": ("Rejected", "거부"),
    "c_record": ("Record", "레코드"),
    "c_message_rejected": ("The whole message would be rejected", "메시지 전체가 거부됩니다"),
    "c_records_summary": (
        "{ok} record(s) would be stored, {bad} rejected",
        "레코드 {ok}건 저장, {bad}건 거부 예정",
    ),
    "c_forbidden": ("Not allowed", "권한 없음"),
    "c_not_found": ("Not found", "찾을 수 없음"),
    "c_reason_note": (
        "reasons are the ingest service's own words",
        "사유는 수집 서비스의 원문입니다",
    ),
    # --- header and common --------------------------------------------------------------
    "programme": ("K-City Network — overseas demonstration", "K-City Network 해외실증 사업"),
    "title_streetlight": (
        "Evaluation report — verified energy savings",
        "평가 보고서 — 에너지 절감량 검증",
    ),
    "title_drone": ("Evaluation report — patrol coverage", "평가 보고서 — 드론 순찰 커버리지"),
    "pilot": ("Pilot", "실증 사업"),
    "city": ("City", "도시"),
    "firm": ("Firm", "참여 기업"),
    "programme_year": ("Programme year", "사업 연도"),
    "devices": ("Devices", "장치 수"),
    "window": ("Evaluation window", "평가 기간"),
    "window_note": (
        "local dates of {tz}; the end date is excluded",
        "{tz} 현지 날짜 기준, 종료일 미포함",
    ),
    "nights_note": (
        "nights are named by the local date of their sunset",
        "야간은 일몰 시점의 현지 날짜로 표기",
    ),
    "summary": ("Summary", "요약"),
    "figure": ("Figure", "그림"),
    "value": ("Value", "값"),
    "item": ("Item", "항목"),
    "none": ("None.", "해당 없음."),
    "not_available": ("not available", "산출 불가"),
    "warnings": ("Warnings from the analysis", "분석 경고"),
    "warnings_note": ("as reported by the analytics (original wording)", "분석 엔진 원문"),
    "device": ("Device", "장치"),
    "night": ("Night", "야간"),
    "day": ("Day", "일자"),
    "group": ("Group", "그룹"),
    "treated": ("treated", "디밍 적용군"),
    "control": ("control", "대조군"),
    "reason": ("Reason", "사유"),
    "time_utc": ("Time (UTC)", "시각 (UTC)"),
    "type": ("Type", "유형"),
    "code": ("Code", "코드"),
    # --- Grafana dashboards (dashboards/, built by `kcity dashboards build --lang`) --------
    "dash_links": ("K-City dashboards", "K-City 대시보드"),
    "dash_open_device": ("Open this device", "이 장치 보기"),
    "dash_ann_events": ("Device events", "장치 이벤트"),
    "dash_ann_outages": ("Communication outages", "통신 두절"),
    "dash_ann_commands": ("Commands", "원격 명령"),
    "dash_sl_map": ("Where the luminaires are", "가로등 위치"),
    "dash_sl_map_desc": (
        "Devices with a registered location; the tooltip gives state and last data.",
        "위치가 등록된 장치; 툴팁에 상태와 최근 데이터 시각 표시.",
    ),
    "dash_ov_title": ("K-City pilots — ministry overview", "K-City 실증 사업 — 부처 종합 현황"),
    "dash_ov_desc": (
        "All K-City Network pilots: devices online, data, verified results.",
        "K-City Network 전체 실증 사업: 온라인 장치, 데이터, 검증 결과.",
    ),
    "dash_ov_totals": ("Pilots and devices", "실증 사업과 장치"),
    "dash_ov_verified": ("Verified to date (all pilots)", "현재까지 검증 결과 (전체 사업)"),
    "dash_ov_verified_desc": (
        "Sum of each pilot's latest savings and coverage result.",
        "각 사업의 최신 절감량·커버리지 결과의 합계.",
    ),
    "dash_ov_ingest": ("Ingest in range", "기간 내 수신"),
    "dash_ov_pilots": ("Pilots", "실증 사업"),
    "dash_ov_pilots_desc": (
        "Online: seen within the last hour or status 'online'. Completeness: telemetry records"
        " received in the time range against the pilot's record interval. Savings and"
        " coverage: the latest verified result. Click a row to drill down.",
        "온라인: 최근 1시간 내 수신 또는 상태 'online'. 완전성: 기간 내 수신된 측정 레코드 수 대비"
        " 사업의 기록 주기 기준 기대 레코드 수. 절감량·커버리지: 최신 검증 결과. 행을 누르면 해당"
        " 사업 대시보드로 이동.",
    ),
    "dash_ov_open": ("Open ${__data.fields.name}", "${__data.fields.name} 보기"),
    "dash_ov_map": ("Where the pilots are", "실증 사업 위치"),
    "dash_pf_title": ("K-City portfolio — every pilot", "K-City 실증 포트폴리오 — 전체 사업"),
    "dash_pf_desc": (
        "The ministry's home: every pilot, its devices, yesterday's data, what is verified"
        " and what is wrong now.",
        "부처 홈: 모든 실증 사업의 장치, 어제 데이터, 검증 결과, 현재 경보.",
    ),
    "dash_pf_pilots": ("Pilots", "실증 사업"),
    "dash_pf_pilots_desc": (
        "Online: seen within the last hour or status 'online', of the registered devices."
        " Completeness yesterday: the pilot's previous local day, counted as the data-quality"
        " method counts it (every device in service, a silent one at 0 %). Headline: the"
        " latest verified savings or border coverage and its window. Alerts: the alert rules"
        " firing now for the pilot. Click a row to drill down.",
        "온라인: 등록 장치 중 최근 1시간 내 수신 또는 상태 'online'. 어제 완전성: 사업 현지 기준"
        " 전날, 데이터 품질 방법과 같은 기준 (운영 중인 모든 장치, 무응답 장치는 0 %). 대표 지표:"
        " 최신 검증 절감률 또는 국경선 커버리지와 그 기간. 경보: 현재 이 사업에 발생 중인 경보"
        " 규칙. 행을 누르면 해당 사업 대시보드로 이동.",
    ),
    "dash_pf_map": ("Pilots on the world map", "세계 지도의 실증 사업"),
    "dash_pf_map_desc": (
        "Green: no alert firing; red: at least one.",
        "녹색: 경보 없음, 빨간색: 경보 1건 이상.",
    ),
    "dash_pf_savings": ("Verified savings", "검증 절감률"),
    "dash_f_online_registered": ("Online / registered", "온라인 / 등록"),
    "dash_f_completeness_yesterday": ("Completeness yesterday", "어제 데이터 완전성"),
    "dash_f_headline": ("Headline", "대표 지표"),
    "dash_f_headline_pct": ("Headline figure", "대표 지표 값"),
    "dash_f_headline_window": ("Verified window", "검증 기간"),
    "dash_f_alerts_firing": ("Alerts", "경보"),
    "dash_f_alert_rules": ("Alerts firing", "발생 중인 경보"),
    "dash_sl_title": ("K-City streetlight pilot", "K-City 스마트 가로등 실증"),
    "dash_sl_desc": (
        "Adaptive streetlights: power, dimming, traffic and verified savings.",
        "적응형 가로등: 전력, 디밍, 교통량, 검증 절감량.",
    ),
    "dash_sl_savings": ("Savings to date", "현재까지 절감량"),
    "dash_sl_savings_desc": (
        "The latest verified savings (IPMVP Option B) for this pilot.",
        "이 사업의 최신 검증 절감량 (IPMVP Option B).",
    ),
    "dash_sl_latest": ("Latest savings result", "최신 절감량 산출"),
    "dash_sl_luminaires": (
        "Luminaires in the latest savings result",
        "최신 절감량 산출의 가로등별 값",
    ),
    "dash_sl_luminaires_desc": (
        "Per luminaire, from the latest stored savings run (savings_luminaires): savings, its"
        " measured full power and where it comes from (baseline, own reporting samples,"
        " control group, rated), lowest savings first.",
        "최신 저장 절감량 산출의 가로등별 값 (savings_luminaires): 절감량, 측정된 최대 출력과"
        " 그 근거 (기준 기간, 자체 보고 기간 측정, 대조군, 정격), 절감률 낮은 순.",
    ),
    "dash_sl_power": ("Power and dim level", "전력과 디밍 수준"),
    "dash_sl_vehicles": ("Vehicles detected", "감지된 차량"),
    "dash_sl_nightly": ("Nightly energy: actual vs counterfactual", "야간 에너지: 실측 대 기준"),
    "dash_sl_nightly_desc": (
        "Per night, from the latest savings run (savings_nightly).",
        "최신 절감량 산출의 야간별 값 (savings_nightly).",
    ),
    "dash_sl_faults": ("Faults", "고장"),
    "dash_sl_silent": ("Devices silent for more than an hour", "1시간 이상 무응답 장치"),
    "dash_sl_silent_desc": (
        "Not revoked, and no data for over an hour (or never).",
        "폐기되지 않았고 1시간 넘게 (또는 한 번도) 데이터가 없는 장치.",
    ),
    "dash_dr_title": ("K-City drone patrol pilot", "K-City 드론 순찰 실증"),
    "dash_dr_desc": (
        "Hybrid drone patrol: tracks, coverage, revisit, energy and link.",
        "하이브리드 드론 순찰: 항적, 커버리지, 재방문, 에너지, 통신 링크.",
    ),
    "dash_dr_map": ("Tracks and detections", "항적과 탐지"),
    "dash_dr_map_desc": (
        "Track points are time-bucketed averages; detections are event positions.",
        "항적 점은 시간 구간 평균, 탐지는 이벤트 위치.",
    ),
    "dash_dr_tracks": ("Tracks", "항적"),
    "dash_dr_detections": ("Detections", "탐지"),
    "dash_dr_coverage": ("Coverage to date", "현재까지 커버리지"),
    "dash_dr_coverage_desc": (
        "The latest persisted coverage result for this pilot.",
        "이 사업의 최신 커버리지 산출 결과.",
    ),
    "dash_dr_cov_daily": ("Coverage per day", "일별 커버리지"),
    "dash_dr_energy": ("Energy per day: battery vs generator", "일별 에너지: 배터리 대 발전기"),
    "dash_dr_power": ("Battery vs generator power", "배터리 대 발전기 출력"),
    "dash_dr_fuel": ("Fuel remaining", "잔여 연료"),
    "dash_dr_link": ("Link quality", "통신 링크 품질"),
    "dash_in_title": ("K-City ingest health", "K-City 데이터 수신 상태"),
    "dash_in_desc": (
        "MQTT ingest: throughput, dead letters, lost messages, latency.",
        "MQTT 수신: 처리량, 거부 메시지, 유실 메시지, 지연.",
    ),
    "dash_in_totals": ("In range", "기간 내 합계"),
    "dash_in_throughput": ("Throughput", "처리량"),
    "dash_in_counters": ("Worker counters per interval", "수신 작업자 구간별 카운터"),
    "dash_in_counters_desc": (
        "Increase of each worker's counters (ingest_stats) per interval; workers serve every"
        " pilot.",
        "구간별 각 작업자 카운터 증가량 (ingest_stats); 작업자는 모든 사업을 처리.",
    ),
    "dash_in_dead": ("Dead letters by stage", "단계별 거부 메시지"),
    "dash_in_dead_desc": (
        "Dead letters whose pilot could not be read from the topic are shown for every pilot.",
        "토픽에서 사업을 알 수 없는 거부 메시지는 모든 사업 보기에 표시.",
    ),
    "dash_in_latency": ("Batch latency (worst per interval)", "배치 지연 (구간별 최대)"),
    "dash_in_reasons": ("Dead letters by reason", "사유별 거부 메시지"),
    "dash_in_suppressed": ("Dead letters counted, not kept", "저장하지 않고 집계한 거부 메시지"),
    "dash_in_suppressed_desc": (
        "Beyond its budget of the minute, a device's dead letters are only counted per reason.",
        "분당 한도를 넘은 장치의 거부 메시지는 사유별로 집계만 합니다.",
    ),
    "dash_in_gaps": ("Sequence gaps (lost messages)", "시퀀스 공백 (유실 메시지)"),
    "dash_in_gaps_desc": (
        "Holes in each device's seq within a boot, for messages received in the time range.",
        "기간 내 수신 메시지에서 부팅별 장치 seq의 빈 번호.",
    ),
    "dash_in_broker_dropped": (
        "Broker: messages dropped beyond the queue bound",
        "브로커: 대기열 한도를 넘어 버린 메시지",
    ),
    "dash_in_broker_dropped_desc": (
        "Mosquitto's own count since it started (all sessions): messages it acknowledged to"
        " a device but could not queue for an away ingest worker (max_queued_messages /"
        " max_queued_bytes). They show as sequence gaps too.",
        "Mosquitto 시작 이후 자체 집계 (모든 세션): 장치에는 수신 확인했으나 연결이 끊긴 수신"
        " 작업자의 대기열에 넣지 못한 메시지 (max_queued_messages / max_queued_bytes)."
        " 시퀀스 공백으로도 나타납니다.",
    ),
    "dash_in_last_seen": ("Devices: last seen", "장치: 최근 수신"),
    "dash_in_last_seen_desc": (
        "max_skew_s: worst received_at − sent_at in the range (clock skew plus delivery delay).",
        "max_skew_s: 기간 내 received_at − sent_at 최댓값 (시계 오차와 전달 지연).",
    ),
    "dash_f_power": ("Power", "전력"),
    "dash_f_dim": ("Dim level", "디밍 수준"),
    "dash_f_vehicles": ("Vehicles", "차량"),
    "dash_f_actual": ("Actual", "실측"),
    "dash_f_counterfactual": ("Counterfactual", "기준 (미적용 시)"),
    "dash_f_completeness": ("Data completeness", "데이터 완전성"),
    "dash_f_full_power": ("Full power", "최대 출력 전력"),
    "dash_f_full_power_source": ("Full power from", "최대 출력 산정 근거"),
    "dash_f_full_power_samples": ("100 % samples", "100 % 측정 수"),
    "dash_f_area_cov": ("Area coverage", "면적 커버리지"),
    "dash_f_border_cov": ("Border coverage", "국경선 커버리지"),
    "dash_f_covered": ("Area covered", "커버 면적"),
    "dash_f_revisit_mean": ("Revisit, mean", "평균 재방문 간격"),
    "dash_f_revisit_p95": ("Revisit, 95th percentile", "재방문 간격 95 백분위"),
    "dash_f_revisit_max": ("Revisit, longest", "최장 재방문 간격"),
    "dash_f_flight_hours": ("Flight time", "비행 시간"),
    "dash_f_gen_share": ("Generator share", "발전기 비중"),
    "dash_f_battery": ("Battery", "배터리"),
    "dash_f_generator": ("Generator", "발전기"),
    "dash_f_fuel": ("Fuel", "연료"),
    "dash_f_rssi_mean": ("Mean RSSI", "평균 RSSI"),
    "dash_f_rssi_worst": ("Worst RSSI", "최저 RSSI"),
    "dash_f_messages": ("Messages", "메시지"),
    "dash_f_records": ("Records", "레코드"),
    "dash_f_dead_letters": ("Dead letters", "거부 메시지"),
    "dash_f_broker_dropped": ("Dropped by the broker", "브로커가 버린 메시지"),
    "dash_f_messages_per_s": ("Messages per second", "초당 메시지"),
    "dash_f_records_per_s": ("Records per second", "초당 레코드"),
    "dash_f_pilots": ("Pilots", "실증 사업"),
    "dash_f_online": ("Online", "온라인"),
    "dash_f_name": ("Name", "사업명"),
    "dash_f_country": ("Country", "국가"),
    "dash_f_solution": ("Solution", "솔루션"),
    "dash_f_last_data": ("Last data", "최근 데이터"),
    # --- Grafana alert rules ({placeholders}: dashboards/alerts.py TEMPLATES) -----------
    "alert_device_silent_title": ("Device silent", "장치 무응답"),
    "alert_device_silent_summary": (
        "{pilot}: device {device} has sent nothing for {value} min (over 3 record intervals).",
        "{pilot}: 장치 {device}이(가) {value}분 동안 데이터를 보내지 않았습니다"
        " (기록 주기 3회 초과).",
    ),
    "alert_pilot_no_data_title": ("Pilot without data", "실증 사업 데이터 없음"),
    "alert_pilot_no_data_summary": (
        "{pilot}: no data from any device for {value} min.",
        "{pilot}: {value}분 동안 어떤 장치에서도 데이터가 없습니다.",
    ),
    "alert_completeness_title": ("Data completeness yesterday", "어제 데이터 완전성"),
    "alert_completeness_summary": (
        "{pilot}: yesterday's data completeness was {value} % (below 90 %).",
        "{pilot}: 어제 데이터 완전성이 {value} %였습니다 (90 % 미만).",
    ),
    "alert_lamp_faults_title": ("Lamp fault", "가로등 고장"),
    "alert_lamp_faults_summary": (
        "{pilot}: luminaire {device} has {value} active fault(s): {codes}.",
        "{pilot}: 가로등 {device}에 해소되지 않은 고장 {value}건: {codes}.",
    ),
    "alert_day_burning_title": ("Day-burning luminaire", "주간 점등 가로등"),
    "alert_day_burning_summary": (
        "{pilot}: luminaire {device} was lit {value} h between 10:00 and 14:00 in the last 24 h.",
        "{pilot}: 가로등 {device}이(가) 최근 24시간 중 10:00–14:00에 {value}시간 점등되었습니다.",
    ),
    "alert_border_uncovered_title": ("Border segment not patrolled", "국경 구간 미순찰"),
    "alert_border_uncovered_summary": (
        "{pilot}: border segment {segment} not covered for {value} min (over the pilot's"
        " max_revisit_s).",
        "{pilot}: 국경 구간 {segment}이(가) {value}분 동안 촬영되지 않았습니다 (사업의"
        " max_revisit_s 초과).",
    ),
    "alert_dead_letters_title": ("Dead-letter spike", "거부 메시지 급증"),
    "alert_dead_letters_summary": (
        "{pilot}: {value} messages refused in 15 min (over 20 and 5× the day's mean).",
        "{pilot}: 15분 동안 {value}건의 메시지가 거부되었습니다 (20건 및 일평균의 5배 초과).",
    ),
    "alert_worker_title": ("Ingest worker disconnected", "수신 작업자 연결 끊김"),
    "alert_worker_summary": (
        "Ingest worker {worker} (all pilots) last reported {value} min ago.",
        "수신 작업자 {worker} (전체 사업)의 마지막 보고가 {value}분 전입니다.",
    ),
    "alert_broker_dropped_title": ("Broker dropping messages", "브로커 메시지 유실"),
    "alert_broker_dropped_summary": (
        "The broker dropped {value} messages in 15 min beyond an ingest session's queue bound"
        " (all pilots): data are being lost.",
        "브로커가 15분 동안 수신 세션의 대기열 한도를 넘은 메시지 {value}건을 버렸습니다"
        " (전체 사업): 데이터가 유실되고 있습니다.",
    ),
    # --- streetlight summary -----------------------------------------------------------
    "savings_kwh": ("Verified savings", "검증 절감량"),
    "savings_pct": ("Savings", "절감률"),
    "ci90": ("{conf} % interval", "{conf} % 신뢰구간"),
    "co2_kg": ("CO₂ avoided", "CO₂ 감축량"),
    "cost_saved": ("Cost saved", "절감 비용"),
    "baseline_kwh": ("Counterfactual (full-power) energy", "반사실(최대출력) 에너지"),
    "actual_kwh": ("Actual (metered) energy", "실측 에너지"),
    "luminaires": ("Treated luminaires", "디밍 적용 가로등"),
    "control_luminaires": ("Control luminaires", "대조군 가로등"),
    "completeness_pct": ("Data completeness", "데이터 완전성"),
    "excluded_count": ("Excluded luminaire-nights", "제외된 가로등-야간"),
    "missing_luminaires": (
        "Treated luminaires without usable data",
        "유효 데이터 없는 처리군 가로등",
    ),
    "burning_hours": ("Metered / astronomical burning hours", "실측 / 천문 점등 시간"),
    "d_e": ("EN 13201-5 D_E (as operated / full power)", "EN 13201-5 D_E (운영 / 최대출력)"),
    # --- M&V plan ----------------------------------------------------------------------
    "mv_plan": ("Measurement and verification plan as applied", "적용된 측정·검증(M&V) 계획"),
    "mv_option": ("Option", "옵션"),
    "mv_option_v": (
        "IPMVP Option B — retrofit isolation, all parameters measured",
        "IPMVP 옵션 B — 개별 설비 분리, 모든 변수 측정",
    ),
    "mv_boundary": ("Measurement boundary", "측정 경계"),
    "mv_boundary_v": ("the luminaire (its controller's meter)", "가로등 1기 (제어기 내장 계량기)"),
    "mv_method": ("Method", "방법"),
    "mv_baseline": ("Baseline window (dimming off)", "기준선 기간 (디밍 해제)"),
    "mv_full_power": ("Full power P_full and its source", "최대출력 P_full 및 출처"),
    "mv_counterfactual": ("Counterfactual per luminaire-night", "가로등-야간별 반사실 에너지"),
    "mv_savings": ("Savings", "절감량"),
    "mv_actual": ("Actual energy", "실측 에너지"),
    "mv_actual_v": (
        "energy register increments (resets handled); power × interval where the"
        " register is missing",
        "누적 전력량계 증분 (리셋 처리), 누락 시 전력 × 간격",
    ),
    "mv_sufficiency": ("Data sufficiency", "데이터 충분성"),
    "mv_sufficiency_v": (
        "a luminaire-night counts with ≥ {pct} % of its expected intervals;"
        " others are listed, never filled",
        "예상 기록의 {pct} % 이상인 가로등-야간만 산입, 나머지는 보간 없이 목록화",
    ),
    "mv_conservatism": ("Conservatism", "보수성"),
    "mv_conservatism_v": (
        "only metered burning hours enter the counterfactual; the control"
        " group is excluded from the headline savings",
        "실측 점등 시간만 반사실에 반영, 대조군은 대표 절감량에서 제외",
    ),
    "mv_ci": ("Uncertainty ({conf} % interval)", "불확도 ({conf} % 신뢰구간)"),
    "mv_params": ("Parameters", "파라미터"),
    "energy_sources": ("Interval energy sources (records)", "구간 에너지 출처 (기록 수)"),
    "regression": (
        "Regression baseline (ASHRAE Guideline 14)",
        "회귀 기준선 (ASHRAE Guideline 14)",
    ),
    "regression_none": (
        "No regression baseline for this window.",
        "이 기간에는 회귀 기준선을 산출할 수 없음.",
    ),
    # --- streetlight sections ----------------------------------------------------------
    "nightly": ("Nightly savings", "야간별 절감량"),
    "nightly_caption": (
        "Savings per night of the treated luminaires, with the {conf} % interval",
        "디밍 적용 가로등의 야간별 절감량과 {conf} % 신뢰구간",
    ),
    "dim_heatmap": ("Dim level by hour of night", "야간 시간대별 디밍 수준"),
    "dim_caption": (
        "Mean dim level [%] of the treated luminaires while lit, by local hour",
        "점등 중 디밍 적용 가로등의 평균 조도 수준 [%], 현지 시각별",
    ),
    "vehicles": ("Vehicles per hour", "시간당 차량 감지"),
    "vehicles_caption": (
        "Vehicle detections per luminaire and hour, by local hour of night",
        "가로등 1기·1시간당 차량 감지 수, 야간 현지 시각별",
    ),
    "completeness": ("Data completeness per luminaire and night", "가로등·야간별 데이터 완전성"),
    "completeness_caption": (
        "Share of expected 5-minute records between sunset and sunrise;"
        " cells below {pct} % are excluded",
        "일몰–일출 사이 예상 기록 대비 수신 비율, {pct} % 미만은 제외",
    ),
    "control_group": ("Control-group comparison", "대조군 비교"),
    "control_none": (
        "No control-group estimate for this window.",
        "이 기간에는 대조군 추정치를 산출할 수 없음.",
    ),
    "design": ("Design", "설계"),
    "mean_kwh": ("Mean energy per luminaire-night [kWh]", "가로등-야간 평균 에너지 [kWh]"),
    "baseline_period": ("baseline", "기준선 기간"),
    "reporting_period": ("reporting", "보고 기간"),
    "did_savings": ("Difference-in-differences savings", "이중차분(DiD) 절감량"),
    "did_vs": ("Counterfactual method savings", "반사실 방법 절감량"),
    "excluded": ("Excluded luminaire-nights", "제외된 가로등-야간"),
    "reason_none": ("no records", "기록 없음"),
    "reason_low": (
        "{pct} % of expected intervals, below {min} %",
        "예상 기록의 {pct} % ({min} % 미만)",
    ),
    "events": ("Non-routine events", "비정기 이벤트"),
    "per_luminaire": ("Per-luminaire results", "가로등별 결과"),
    "nights_counted": ("Nights", "산입 야간"),
    "col_cf": ("E_cf [kWh]", "E_cf [kWh]"),
    "col_actual": ("E_actual [kWh]", "E_actual [kWh]"),
    "col_savings": ("Savings [kWh]", "절감량 [kWh]"),
    "col_completeness": ("Complete [%]", "완전성 [%]"),
    "full_power_w": ("P_full [W]", "P_full [W]"),
    "source": ("Source", "출처"),
    # --- drone -------------------------------------------------------------------------
    "area_coverage": ("Area coverage", "면적 커버리지"),
    "covered_km2": ("Covered area", "커버 면적"),
    "aoi_km2": ("Area of interest", "관심 구역 면적"),
    "linear_coverage": ("Border coverage", "국경선 커버리지"),
    "border_km": ("Border length", "국경선 길이"),
    "revisit": ("Revisit interval mean / p95 / max", "재방문 간격 평균 / p95 / 최대"),
    "never_visited": ("Grid cells never visited", "미방문 격자"),
    "flight_hours": ("Flight hours", "비행 시간"),
    "patrol_hours": ("Patrol hours", "순찰 시간"),
    "distance_km": ("Distance flown", "비행 거리"),
    "detections": ("Detections", "탐지 건수"),
    "battery_kwh": ("Battery energy", "배터리 에너지"),
    "generator_kwh": ("Generator energy", "발전기 에너지"),
    "fuel_l": ("Fuel used", "연료 사용량"),
    "generator_share": ("Generator share", "발전기 비중"),
    "map": ("Coverage map", "커버리지 지도"),
    "map_caption": (
        "Area of interest, border line, covered area and patrol tracks (UTM, EPSG:{epsg});"
        " right: detail around the tracks",
        "관심 구역, 국경선, 커버 면적, 순찰 경로 (UTM, EPSG:{epsg}); 오른쪽: 경로 주변 확대",
    ),
    "revisit_hist": ("Revisit intervals", "재방문 간격 분포"),
    "revisit_caption": (
        "Time between successive visits of each {cell} m grid cell",
        "{cell} m 격자별 연속 방문 사이 시간",
    ),
    "per_day": ("Coverage per day", "일별 커버리지"),
    "per_day_caption": (
        "Per-day figures do not add up: coverage of a window is a union",
        "일별 수치는 합산되지 않음: 기간 커버리지는 합집합",
    ),
    "energy_day": ("Hybrid energy per day", "일별 하이브리드 에너지"),
    "points": ("Telemetry points kept for coverage", "커버리지 산정에 사용된 위치 기록"),
    "pt_points": ("Points", "전체"),
    "pt_not_airborne": ("Not airborne", "비행 아님"),
    "pt_not_patrol": ("Not in patrol", "순찰 모드 아님"),
    "pt_camera_off": ("Camera off", "카메라 꺼짐"),
    "pt_bad_fix": ("Bad GPS fix", "GPS 불량"),
    "pt_no_footprint": ("No footprint", "촬영범위 없음"),
    "pt_glitches": ("GPS glitches", "GPS 튐"),
    "pt_kept": ("Kept", "사용"),
    "coverage_method": ("Method", "산정 방법"),
    "coverage_method_v": (
        "Footprint width W = 2·h_AGL·tan(HFOV/2), counted only while airborne, camera on, in"
        " patrol mode, with a usable GPS fix; tracks split at gaps and impossible speeds, never"
        " bridged; geometry in metres (UTM); area coverage = |AOI ∩ ∪ footprints| / |AOI|;"
        " linear coverage = length(border ∩ ∪ footprints) / length(border); revisit per grid"
        " cell (idleness).",
        "촬영 폭 W = 2·h_AGL·tan(HFOV/2), 비행 중·카메라 작동·순찰 모드·유효 GPS일 때만 산입;"
        " 데이터 공백과 불가능한 속도에서 경로를 분리하며 공백은 잇지 않음; 좌표는 미터(UTM);"
        " 면적 커버리지 = |AOI ∩ ∪ 촬영범위| / |AOI|; 선형 커버리지 = 길이(국경선 ∩ ∪ 촬영범위)"
        " / 길이(국경선); 재방문은 격자별 유휴 시간(idleness)으로 산정.",
    ),
    # --- quality, reproducibility, sources, signature ----------------------------------
    "quality": ("Data quality", "데이터 품질"),
    "records": ("Records / expected", "수신 / 예상 기록"),
    "seq_gaps": ("Sequence gaps (lost messages)", "시퀀스 누락 (유실 메시지)"),
    "duplicates": ("Duplicate messages", "중복 메시지"),
    "dead_letters": ("Dead letters", "처리 불가 메시지"),
    "reproducibility": ("Reproducibility", "재현성 정보"),
    "repro_note": (
        "Re-run {cmd} on the same data: the input hash and every figure must match.",
        "동일 데이터로 {cmd}을(를) 다시 실행하면 입력 해시와 모든 수치가 일치해야 함.",
    ),
    "repro_bundle": (
        "This report was regenerated from the evidence bundle alone, without our database;"
        " {cmd} makes it again.",
        "이 보고서는 데이터베이스 없이 증빙 번들만으로 다시 생성됨; {cmd}(으)로 다시 만들 수 있음.",
    ),
    "evidence_bundle": ("Evidence bundle", "증빙 번들"),
    "bundle_note": (
        "Every figure above is re-derived offline, without our database, by {cmd}: it checks"
        " each file's SHA-256, re-computes each figure from the bundle's raw rows and prints"
        " the stored and the re-computed value side by side.",
        "위 모든 수치는 데이터베이스 없이 {cmd}(으)로 다시 산출됨: 각 파일의 SHA-256을 확인하고,"
        " 번들의 원시 데이터로 각 수치를 재계산하여 저장값과 재계산값을 나란히 출력함.",
    ),
    "bundle_none": (
        "Export the raw rows behind these figures with {cmd}; kcity verify then re-derives"
        " every figure offline.",
        "{cmd}(으)로 이 수치들의 원시 데이터를 내보낸 뒤 kcity verify로 모든 수치를 오프라인에서"
        " 다시 산출할 수 있음.",
    ),
    "analysis": ("Analysis", "분석"),
    "an_savings": ("savings", "절감량 검증"),
    "an_coverage": ("coverage", "순찰 커버리지"),
    "an_quality": ("data quality", "데이터 품질"),
    "method_version": ("Method / version", "방법 / 버전"),
    "input_hash": ("Input hash (SHA-256)", "입력 데이터 해시 (SHA-256)"),
    "result_id": ("Result id", "결과 ID"),
    "software": ("Software", "소프트웨어"),
    "generated": ("Generated", "생성 시각"),
    "sources": ("Methods and sources", "방법론 및 참고 문헌"),
    "signature": ("Evaluator's attestation", "평가자 확인"),
    "signature_text": (
        "I have reviewed the data, method and results above.",
        "위 데이터, 방법 및 결과를 검토하였음을 확인합니다.",
    ),
    "sign_name": ("Name", "성명"),
    "sign_org": ("Organisation", "소속"),
    "sign_date": ("Date", "일자"),
    "sign_sig": ("Signature", "서명"),
    "page": ("Page", "쪽"),
    # --- figure axes -------------------------------------------------------------------
    "ax_savings_kwh": ("Savings [kWh]", "절감량 [kWh]"),
    "ax_interval": ("{conf} % interval", "{conf} % 신뢰구간"),
    "ax_hour": ("Local hour", "현지 시각"),
    "ax_dim": ("Dim level [%]", "조도 수준 [%]"),
    "ax_vehicles": ("Detections per luminaire-hour", "가로등·시간당 감지 수"),
    "ax_mean": ("mean", "평균"),
    "ax_each_night": ("each night", "각 야간"),
    "ax_completeness": ("Completeness [%]", "완전성 [%]"),
    "ax_kwh_night": ("kWh per luminaire-night", "가로등-야간당 kWh"),
    "ax_easting": ("Easting [km]", "동향 좌표 [km]"),
    "ax_northing": ("Northing [km]", "북향 좌표 [km]"),
    "ax_aoi": ("area of interest", "관심 구역"),
    "ax_border": ("border line", "국경선"),
    "ax_covered": ("covered", "커버 면적"),
    "ax_tracks": ("tracks", "순찰 경로"),
    "unit_min": ("min", "분"),
    "ax_interval_min": ("Revisit interval [min]", "재방문 간격 [분]"),
    "ax_count": ("Intervals", "간격 수"),
    "ax_coverage_pct": ("Coverage [%]", "커버리지 [%]"),
    "ax_kwh": ("Energy [kWh]", "에너지 [kWh]"),
    "ax_fuel": ("Fuel [L]", "연료 [L]"),
    "ax_no_data": ("no data", "데이터 없음"),
    "ax_lon": ("Longitude [°]", "경도 [°]"),
    "ax_lat": ("Latitude [°]", "위도 [°]"),
    # --- the portfolio brief (`kcity portfolio`) ------------------------------------------
    "pf_title": ("K-City portfolio brief", "K-City 실증 포트폴리오 브리핑"),
    "pf_state": (
        "State as of {now}: devices online now, completeness of each pilot's local yesterday,"
        " the latest verified figure and the alert rules firing — the home dashboard's table.",
        "{now} 기준 현황: 현재 온라인 장치, 사업 현지 기준 어제 데이터 완전성, 최신 검증 지표,"
        " 발생 중인 경보 규칙 — 홈 대시보드와 같은 표.",
    ),
    "pf_window": ("Verified in the window", "기간 내 검증 결과"),
    "pf_window_note": (
        "Computed now from the raw data with the evaluation methods (nothing stored); the"
        " numbers of kcity savings|coverage|quality --json for the same window.",
        "원시 데이터로 평가 방법을 지금 적용한 값 (저장하지 않음); 같은 기간의"
        " kcity savings|coverage|quality --json 값과 같음.",
    ),
    "pf_map": (
        "Where the pilots are (red: an alert is firing)",
        "실증 사업 위치 (빨간색: 경보 발생)",
    ),
    "pf_problems": ("Notes from the analyses", "분석 참고 사항"),
    "pf_none": ("no alert", "경보 없음"),
    "pf_dates": (
        "local dates of each pilot's time zone; the end date is excluded",
        "각 사업 현지 날짜 기준, 종료일 미포함",
    ),
}

for _key, _pair in _TEXT.items():
    assert len(_pair) == len(LANGS) and all(_pair), f"reports.i18n: {_key} lacks a language"

SOURCES_STREETLIGHT: Final = (
    "Efficiency Valuation Organization (EVO), International Performance Measurement and"
    " Verification Protocol (IPMVP), Core Concepts — Option B, retrofit isolation: all"
    " parameter measurement.",
    "ASHRAE Guideline 14, Measurement of Energy, Demand and Water Savings — CV(RMSE), NMBE and"
    " fractional savings uncertainty (Annex B).",
    "CalTRACK Methods 2.2 (data sufficiency) and 4.3.2.4 (savings uncertainty); OpenEEmeter"
    " eemeter total_savings_uncertainty.",
    "Sun, Y. & Baltazar, J. C. (2013), correction factor K for daily data in the ASHRAE"
    " Guideline 14 uncertainty formula.",
    "EN 13201-5:2015, Road lighting — Energy performance indicators (D_P, D_E).",
    "TALQ Consortium, Smart City Protocol — LampMonitor attributes (activePower, activeEnergy,"
    " operatingHours, lampFailure).",
)


def drone_sources(epsg: int, crs_name: str, city: str) -> tuple[str, ...]:
    """The drone method's sources; the projection and place are the pilot's own."""
    return (
        "Machado, A., Ramalho, G., Zucker, J.-D. & Drogoul, A. (2002), Multi-agent patrolling:"
        " an empirical analysis of alternative architectures — idleness as the patrol metric.",
        "MAVLink common message set — GLOBAL_POSITION_INT, BATTERY_STATUS, GENERATOR_STATUS,"
        " EFI_STATUS units; ArduPilot and PX4 flight-mode numbering.",
        f"EPSG:{epsg}, {crs_name} ({city}); pyproj / PROJ for the projection; GEOS"
        " (shapely) for the footprint union.",
        "Footprint of a nadir camera W = 2·h_AGL·tan(HFOV/2); a straight track of length L"
        " sweeps L·W + π(W/2)².",
    )


def labels(lang: str) -> Mapping[str, str]:
    """Every label of the report in `lang` (one of `LANGS`)."""
    k = LANGS.index(lang)
    return {key: pair[k] for key, pair in _TEXT.items()}


__all__ = ["LANGS", "SOURCES_STREETLIGHT", "drone_sources", "labels"]
