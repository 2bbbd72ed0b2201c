//! No documented setting that does nothing: every key of the README's JSON table and every
//! directive the nginx table lists as translated has a line in `PROOFS` naming the tests
//! that show its effect, and every directive accepted without effect is in the config
//! that shows pinlb takes them all.
//!
//! A new key or directive in the README needs its line in `PROOFS`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One line per documented setting: the JSON key as the README's table writes it, or
/// `CONTEXT/DIRECTIVE` for a translated nginx directive; then the tests that show its
/// effect, each `FILE.rs::TEST` (under `tests/`) or `src/PATH.rs::TEST` (a unit test).
///
/// A JSON key needs at least one integration test. An nginx directive needs an
/// nginx-config integration test (`tests/nginx_*.rs`, `tests/container_config.rs`), or a
/// translation test under `src/config/nginx/` with a test of the setting's behaviour.
const PROOFS: &str = "
threads                                 process.rs::threads_sets_the_number_of_proxy_worker_threads
listeners[].addr                        cli.rs::a_listener_port_in_use_is_a_clear_error balancing.rs::equal_weights_rotate_across_connections
listeners[].proxy_protocol              nginx_proxy_protocol.rs::json_listeners_take_the_proxy_protocol_too
listeners[].http2                       nginx_tls.rs::json_listener_certificates_answer_for_their_own_names
listeners[].tls.certificates            nginx_tls.rs::json_listener_certificates_answer_for_their_own_names nginx_tls.rs::bad_certificates_and_directives_are_refused_with_their_line
listeners[].tls.protocols               nginx_tls.rs::json_listener_certificates_answer_for_their_own_names
listeners[].tls.prefer_server_ciphers   nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
listeners[].tls.ciphers                 nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
listeners[].tls.ecdh_curve              nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
listeners[].tls.session_cache           nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
listeners[].tls.session_tickets         nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption nginx_tls.rs::rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume
upstreams.NAME.servers[].name           pin.rs::header_pins_every_request_to_the_named_server headers.rs::responses_name_the_server_that_answered
upstreams.NAME.servers[].addr           balancing.rs::weights_2_1_1_give_each_server_exactly_its_share_every_4_requests retry.rs::a_dead_address_is_skipped_for_a_live_server
upstreams.NAME.servers[].weight         balancing.rs::weights_2_1_1_give_each_server_exactly_its_share_every_4_requests balancing.rs::weights_5_1_1_interleave_like_nginx
upstreams.NAME.servers[].max_fails      health.rs::max_fails_failed_requests_take_a_server_out_for_fail_timeout
upstreams.NAME.servers[].fail_timeout_ms health.rs::max_fails_failed_requests_take_a_server_out_for_fail_timeout
upstreams.NAME.servers[].max_conns      balancing.rs::max_conns_sends_requests_past_a_full_server
upstreams.NAME.servers[].backup         balancing.rs::backup_serves_only_when_no_other_server_can_and_down_never
upstreams.NAME.servers[].down           balancing.rs::backup_serves_only_when_no_other_server_can_and_down_never
upstreams.NAME.servers[].resolve        dns.rs::every_address_of_a_name_is_a_server dns.rs::a_changed_answer_is_followed_within_its_ttl_without_failed_requests dns.rs::failed_empty_and_nxdomain_answers_keep_the_last_addresses
upstreams.NAME.servers[].drain          sticky.rs::a_draining_server_gets_only_sticky_requests
upstreams.NAME.servers[].route          sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.cookie            sticky.rs::two_processes_give_and_honour_the_same_cookie sticky.rs::a_cookie_for_a_down_or_unknown_server_is_balanced_and_replaced sticky.rs::an_explicit_pin_beats_the_sticky_cookie
upstreams.NAME.sticky.expires_ms        sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.domain            sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.path              sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.httponly          sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.secure            sticky.rs::json_sticky_attributes_and_routes
upstreams.NAME.sticky.samesite          sticky.rs::json_sticky_attributes_and_routes
resolver.servers                        dns.rs::every_address_of_a_name_is_a_server
resolver.valid_ms                       dns.rs::valid_ms_looks_names_up_again_sooner_than_their_ttl
resolver.ipv4                           dns.rs::ipv4_and_ipv6_choose_the_records_asked_for
resolver.ipv6                           dns.rs::ipv4_and_ipv6_choose_the_records_asked_for
resolver.timeout_ms                     dns.rs::failed_empty_and_nxdomain_answers_keep_the_last_addresses
upstreams.NAME.balance                  balancing.rs::weights_5_1_1_interleave_like_nginx balancing.rs::least_conn_sends_requests_away_from_a_busy_server balancing.rs::ip_hash_sends_one_client_address_to_one_server
upstreams.NAME.balance.hash.key         balancing.rs::hash_sends_each_key_to_one_server_and_spreads_the_keys
upstreams.NAME.balance.hash.consistent  balancing.rs::consistent_hash_moves_keys_only_to_an_added_server balancing.rs::plain_hash_reshuffles_keys_when_a_server_is_added
upstreams.NAME.health_check.type        health.rs::statuses_200_to_399_are_healthy_and_others_are_not health.rs::tcp_check_follows_a_killed_and_restarted_server
upstreams.NAME.health_check.path        health.rs::statuses_200_to_399_are_healthy_and_others_are_not
upstreams.NAME.health_check.interval_ms health.rs::checks_keep_running_on_their_interval
upstreams.NAME.health_check.timeout_ms  health.rs::a_check_slower_than_its_timeout_fails_and_a_faster_one_passes
upstreams.NAME.health_check.fails       health.rs::fails_and_passes_count_checks_in_a_row
upstreams.NAME.health_check.passes      health.rs::fails_and_passes_count_checks_in_a_row
upstreams.NAME.keepalive.connections    upstream_keepalive.rs::keepalive_bounds_the_idle_connections_of_its_upstream
upstreams.NAME.keepalive.timeout_ms     upstream_keepalive.rs::idle_connections_are_closed_after_the_upstream_keepalive_timeout
upstreams.NAME.keepalive.requests       upstream_keepalive.rs::keepalive_requests_closes_a_connection_after_its_last_request
routes[].path                           balancing.rs::longest_route_prefix_wins balancing.rs::a_path_no_route_covers_gets_404
routes[].upstream                       balancing.rs::longest_route_prefix_wins
routes[].return.status                  balancing.rs::return_routes_answer_without_a_server
routes[].return.text                    balancing.rs::return_routes_answer_without_a_server
routes[].pin.header                     pin.rs::header_pins_every_request_to_the_named_server pin.rs::header_beats_cookie
routes[].pin.cookie                     pin.rs::cookie_pins_every_request_to_the_named_server
routes[].pin.on_unhealthy               pin.rs::pin_to_a_down_server_falls_back_to_the_healthy_ones_by_default pin.rs::pin_to_a_down_server_is_refused_with_503_when_configured pin.rs::pin_to_a_down_server_is_used_anyway_when_configured
routes[].pin.allow_from                 pin_guard.rs::a_pin_from_outside_allow_from_is_ignored_and_the_request_balanced
routes[].pin.secret                     pin_guard.rs::only_a_correctly_signed_pin_pins
routes[].proxy                          errors.rs::a_slow_server_gives_504_after_the_read_timeout src/config/json.rs::route_proxy_settings_override_the_top_level_ones
routes[].access_log                     observe.rs::access_log_lines_parse_into_the_request_facts
routes[].limits                         limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload src/config/json/limits.rs::zones_and_limits_read_with_route_overrides
limit_req_zones.NAME.key                limits.rs::keys_come_from_any_variable_and_an_empty_key_is_not_limited limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload
limit_req_zones.NAME.size               limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload src/runtime/compile.rs::limits_name_known_zones_of_a_usable_size
limit_req_zones.NAME.rate               limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload
limit_conn_zones.NAME.key               limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload
limit_conn_zones.NAME.size              limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload src/config/json/limits.rs::bad_limit_keys_are_refused_at_their_path
limits.req                              limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload
limits.conn                             limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload
limits.req_status                       limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload src/config/json/limits.rs::zones_and_limits_read_with_route_overrides
limits.conn_status                      limits.rs::json_limits_apply_and_an_unchanged_zone_keeps_its_buckets_across_a_reload src/runtime/compile.rs::limits_name_known_zones_of_a_usable_size
limits.req_log_level                    limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/json/limits.rs::zones_and_limits_read_with_route_overrides
limits.conn_log_level                   limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/json/limits.rs::zones_and_limits_read_with_route_overrides
limits.req_dry_run                      limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through
limits.conn_dry_run                     limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through
routes[].real_ip                        nginx_real_ip.rs::json_real_ip_and_pin_allow_lists_see_the_real_address
real_ip.from                            nginx_real_ip.rs::json_real_ip_and_pin_allow_lists_see_the_real_address
real_ip.header                          nginx_real_ip.rs::json_real_ip_and_pin_allow_lists_see_the_real_address
real_ip.recursive                       nginx_real_ip.rs::json_real_ip_and_pin_allow_lists_see_the_real_address
merge_slashes                           uri_normalization.rs::merge_slashes_off_keeps_runs_of_slashes_as_nginx_does
proxy.connect_timeout_ms                errors.rs::a_connect_that_hangs_gives_up_after_the_connect_timeout
proxy.read_timeout_ms                   errors.rs::a_slow_server_gives_504_after_the_read_timeout errors.rs::a_timeout_moves_the_request_to_the_next_server_like_nginx
proxy.send_timeout_ms                   errors.rs::an_upload_the_server_does_not_read_gives_504_after_the_send_timeout
proxy.websocket_idle_timeout_ms         websocket.rs::idle_websocket_is_closed_after_the_configured_idle_limit websocket.rs::idle_websocket_survives_below_the_idle_limit
proxy.next_upstream                     retry.rs::next_upstream_statuses_move_a_request_to_the_next_server retry.rs::next_upstream_off_sends_the_first_failure_to_the_client retry.rs::next_upstream_non_idempotent_retries_a_post_too
proxy.next_upstream_tries               retry.rs::next_upstream_tries_bounds_the_attempts
proxy.set_headers.NAME                  headers.rs::configured_headers_replace_the_defaults_and_empty_values_remove
proxy.client_max_body_size              errors.rs::a_body_over_client_max_body_size_gets_413_and_reaches_no_server
proxy.tls                               nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
proxy.ssl_server_name                   nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
proxy.ssl_name                          nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
proxy.ssl_verify                        nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
proxy.ssl_trusted_certificate           nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
proxy.http2                             grpc.rs::json_proxy_http2_speaks_h2c_to_the_servers
listeners[].tls.acme                    acme.rs::json_acme_keys_are_checked_with_their_paths acme.rs::an_unreachable_directory_serves_a_stand_in_and_keeps_everything_else_serving
acme_issuers.NAME.uri                   acme.rs::json_acme_keys_are_checked_with_their_paths acme.rs::an_unreachable_directory_serves_a_stand_in_and_keeps_everything_else_serving
acme_issuers.NAME.accept_terms_of_service acme.rs::json_acme_keys_are_checked_with_their_paths
acme_issuers.NAME.contact               acme.rs::json_acme_keys_are_checked_with_their_paths
acme_issuers.NAME.state_path            acme.rs::json_acme_keys_are_checked_with_their_paths
acme_issuers.NAME.ssl_trusted_certificate acme.rs::json_acme_keys_are_checked_with_their_paths
acme_issuers.NAME.ssl_verify            acme.rs::json_acme_keys_are_checked_with_their_paths acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
acme_issuers.NAME.challenge             acme.rs::json_acme_keys_are_checked_with_their_paths acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
acme_issuers.NAME.renew_before_expiry_ms acme.rs::json_acme_keys_are_checked_with_their_paths src/tls/acme/schedule.rs::renewal_comes_at_two_thirds_or_a_month_before_expiry acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
served_by_header                        headers.rs::responses_name_the_server_that_answered headers.rs::no_served_by_header_unless_configured
served_by_reason                        pin_guard.rs::served_by_says_why_when_configured
keepalive_timeout_ms                    process.rs::an_idle_client_connection_is_closed_after_keepalive_timeout
keepalive_requests                      http1_limits.rs::keepalive_requests_closes_the_connection_after_that_many
client_header_timeout_ms                http1_limits.rs::the_whole_head_must_arrive_within_client_header_timeout
client_body_timeout_ms                  http1_limits.rs::a_stalled_body_is_closed_after_client_body_timeout
client_send_timeout_ms                  http1_limits.rs::a_client_that_stops_reading_is_closed_after_send_timeout
client_header_buffer_size               http1_limits.rs::configured_header_buffers_set_the_limits
large_client_header_buffers.number      http1_limits.rs::configured_header_buffers_set_the_limits http1_limits.rs::heads_over_nginxs_default_buffers_are_refused_as_nginx_refuses_them
large_client_header_buffers.size        http1_limits.rs::configured_header_buffers_set_the_limits http1_limits.rs::heads_over_nginxs_default_buffers_are_refused_as_nginx_refuses_them
access_log.path                         observe.rs::access_log_lines_parse_into_the_request_facts
access_log.format                       observe.rs::access_log_lines_parse_into_the_request_facts observe.rs::access_log_lines_follow_a_named_log_format
log_formats.NAME                        observe.rs::access_log_lines_follow_a_named_log_format
admin.addr                              observe.rs::status_lists_the_pins observe.rs::healthcheck_command_follows_the_admin_healthz
admin.token                             observe.rs::admin_refuses_other_methods_foreign_hosts_and_missing_tokens
pid_file                                lifecycle.rs::sigterm_with_nothing_in_flight_exits_within_drain_delay_plus_a_second lifecycle.rs::stop_and_quit_commands_signal_the_running_process
shutdown.drain_delay_ms                 lifecycle.rs::sigterm_with_nothing_in_flight_exits_within_drain_delay_plus_a_second lifecycle.rs::a_slow_request_in_flight_completes_and_healthz_says_503_meanwhile
shutdown.grace_period_ms                lifecycle.rs::the_grace_period_bounds_the_wait_for_in_flight_requests
shutdown.upgrade_sock                   lifecycle.rs::a_manual_upgrade_hands_over_through_the_configured_upgrade_socket

main/worker_processes                   src/config/nginx/tests.rs::map_and_log_format_and_main_directives_translate nginx_config.rs::print_config_shows_the_translated_tutorial process.rs::threads_sets_the_number_of_proxy_worker_threads
main/pid                                src/config/nginx/tests.rs::map_and_log_format_and_main_directives_translate lifecycle.rs::sigterm_with_nothing_in_flight_exits_within_drain_delay_plus_a_second
main/error_log                          nginx_directives.rs::error_log_writes_from_its_level_up nginx_least_conn.rs::max_fails_takes_a_server_out_for_fail_timeout
main/worker_shutdown_timeout            src/config/nginx/setting_tests.rs::pinlb_directives_and_worker_shutdown_timeout_set_the_lifecycle lifecycle.rs::the_grace_period_bounds_the_wait_for_in_flight_requests
main/include                            container_config.rs::a_server_file_in_conf_d_replaces_the_default_server src/config/nginx/parser.rs::glob_include_is_sorted src/config/nginx/parser.rs::relative_include
main/pinlb_admin                        src/config/nginx/setting_tests.rs::pinlb_directives_and_worker_shutdown_timeout_set_the_lifecycle observe.rs::status_lists_the_pins src/config/nginx/tests.rs::pinlb_admin_takes_an_address_and_an_optional_token observe.rs::admin_refuses_other_methods_foreign_hosts_and_missing_tokens
main/pinlb_drain_delay                  src/config/nginx/setting_tests.rs::pinlb_directives_and_worker_shutdown_timeout_set_the_lifecycle lifecycle.rs::sigterm_with_nothing_in_flight_exits_within_drain_delay_plus_a_second
main/pinlb_upgrade_sock                 src/config/nginx/setting_tests.rs::pinlb_directives_and_worker_shutdown_timeout_set_the_lifecycle lifecycle.rs::a_manual_upgrade_hands_over_through_the_configured_upgrade_socket
http/upstream                           nginx_tutorial.rs::tutorial_balances_round_robin
http/server                             nginx_tutorial.rs::tutorial_balances_round_robin nginx_least_conn.rs::server_name_picks_the_server_block
http/map                                nginx_directives.rs::map_picks_exact_keys_then_regexes_then_the_default src/config/nginx/tests.rs::map_and_log_format_and_main_directives_translate
http/log_format                         nginx_directives.rs::log_format_with_escape_json_writes_json_lines container_config.rs::a_server_file_in_conf_d_replaces_the_default_server
http/access_log                         nginx_directives.rs::log_format_with_escape_json_writes_json_lines container_config.rs::a_server_file_in_conf_d_replaces_the_default_server
http/keepalive_timeout                  src/config/nginx/setting_tests.rs::keepalive_settings_translate_for_clients_and_upstreams process.rs::an_idle_client_connection_is_closed_after_keepalive_timeout
http/client_max_body_size               src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location src/config/nginx/tests.rs::nginx_defaults_apply_without_settings errors.rs::a_body_over_client_max_body_size_gets_413_and_reaches_no_server
http/proxy_*                            src/config/nginx/tests.rs::proxy_settings_inherit_from_http_to_location errors.rs::a_slow_server_gives_504_after_the_read_timeout
http/add_header                         src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location nginx_directives.rs::add_header_marks_good_answers_and_always_every_answer
http/geo                                pin_guard.rs::nginx_geo_and_map_restrict_the_pin_to_some_addresses src/config/nginx/variables.rs::geo_map_and_variable_pins_translate
http/merge_slashes                      uri_normalization.rs::merge_slashes_off_keeps_runs_of_slashes_as_nginx_does src/config/nginx/setting_tests.rs::merge_slashes_is_read_at_http_and_server_level
http/limit_req_zone                     limits.rs::burst_with_nodelay_passes_at_once_then_refuses_with_503_until_the_bucket_leaks src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
http/limit_conn_zone                    limits.rs::limit_conn_refuses_requests_over_the_number_in_progress src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
http/limit_*                            limits.rs::burst_with_nodelay_passes_at_once_then_refuses_with_503_until_the_bucket_leaks src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
http/pinlb_pin_secret                   pin_guard.rs::nginx_pinlb_pin_secret_needs_signed_values src/config/nginx/variables.rs::geo_map_and_variable_pins_translate
http/client_header_timeout                src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::the_whole_head_must_arrive_within_client_header_timeout
http/client_body_timeout                  src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::a_stalled_body_is_closed_after_client_body_timeout
http/send_timeout                         src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::a_client_that_stops_reading_is_closed_after_send_timeout
http/client_header_buffer_size            src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::configured_header_buffers_set_the_limits
http/large_client_header_buffers          src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::configured_header_buffers_set_the_limits
http/keepalive_requests                   src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::keepalive_requests_closes_the_connection_after_that_many
http/ssl_certificate                    nginx_tls.rs::http2_requests_on_one_connection_are_balanced_and_pinned src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server
http/ssl_certificate_key                nginx_tls.rs::http2_requests_on_one_connection_are_balanced_and_pinned src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server
http/ssl_protocols                      src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_listener_certificates_answer_for_their_own_names nginx_tls.rs::bad_certificates_and_directives_are_refused_with_their_line
http/ssl_prefer_server_ciphers          src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
http/ssl_ciphers                        src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
http/ssl_ecdh_curve                     src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
http/ssl_session_cache                  src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
http/ssl_session_tickets                src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
http/http2                              nginx_tls.rs::http2_requests_on_one_connection_are_balanced_and_pinned src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server
server/ssl_certificate                  nginx_tls.rs::sni_picks_the_certificate_by_server_name_and_no_sni_gets_the_default nginx_tls.rs::rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume
server/ssl_certificate_key              nginx_tls.rs::sni_picks_the_certificate_by_server_name_and_no_sni_gets_the_default nginx_tls.rs::bad_certificates_and_directives_are_refused_with_their_line
server/ssl_protocols                    src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::bad_certificates_and_directives_are_refused_with_their_line nginx_tls.rs::json_listener_certificates_answer_for_their_own_names
server/ssl_prefer_server_ciphers        src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
server/ssl_ciphers                      src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
server/ssl_ecdh_curve                   src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
server/ssl_session_cache                nginx_tls.rs::rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server
server/ssl_session_tickets              nginx_tls.rs::rsa_and_ecdsa_pairs_serve_clients_of_either_kind_and_sessions_resume src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server nginx_tls.rs::json_tls_settings_choose_suites_curves_and_resumption
server/http2                            nginx_tls.rs::http2_on_a_plain_listener_takes_h2c_by_prior_knowledge_beside_http1 src/config/nginx/tls.rs::tls_directives_translate_onto_the_listeners_default_server
upstream/server                         src/config/nginx/tests.rs::upstream_parameters_translate nginx_tutorial.rs::weighted_ports_interleave_3_1_1_like_nginx nginx_least_conn.rs::backup_serves_only_when_every_primary_is_gone_and_down_never nginx_least_conn.rs::max_fails_takes_a_server_out_for_fail_timeout balancing.rs::max_conns_sends_requests_past_a_full_server nginx_resolve_sticky.rs::nginx_resolver_and_server_resolve_follow_the_name nginx_resolve_sticky.rs::nginx_sticky_cookie_sets_nginx_s_attributes
http/resolver                           nginx_resolve_sticky.rs::nginx_resolver_and_server_resolve_follow_the_name
http/resolver_timeout                   nginx_resolve_sticky.rs::nginx_resolver_and_server_resolve_follow_the_name
upstream/least_conn                     nginx_least_conn.rs::least_conn_sends_new_requests_away_from_a_busy_server
upstream/ip_hash                        nginx_websocket.rs::one_client_address_always_reaches_the_same_server
upstream/hash                           nginx_least_conn.rs::consistent_hash_keeps_sessions_on_their_server src/config/nginx/setting_tests.rs::hash_without_consistent_is_the_plain_hash balancing.rs::plain_hash_reshuffles_keys_when_a_server_is_added
upstream/keepalive                      src/config/nginx/setting_tests.rs::keepalive_settings_translate_for_clients_and_upstreams upstream_keepalive.rs::keepalive_bounds_the_idle_connections_of_its_upstream
upstream/keepalive_timeout              src/config/nginx/setting_tests.rs::keepalive_settings_translate_for_clients_and_upstreams upstream_keepalive.rs::idle_connections_are_closed_after_the_upstream_keepalive_timeout
upstream/keepalive_requests             src/config/nginx/setting_tests.rs::keepalive_settings_translate_for_clients_and_upstreams upstream_keepalive.rs::keepalive_requests_closes_a_connection_after_its_last_request
server/listen                           nginx_tutorial.rs::tutorial_balances_round_robin nginx_proxy_protocol.rs::v1_and_v2_headers_name_the_client src/config/nginx/tests.rs::server_names_listen_and_return src/routing/server_names.rs::listen_addresses_match_exactly_or_by_wildcard nginx_tls.rs::sni_picks_the_certificate_by_server_name_and_no_sni_gets_the_default
upstream/sticky                         nginx_resolve_sticky.rs::nginx_sticky_cookie_sets_nginx_s_attributes
upstream/resolver                       nginx_resolve_sticky.rs::nginx_resolver_and_server_resolve_follow_the_name
upstream/resolver_timeout               nginx_resolve_sticky.rs::nginx_resolver_and_server_resolve_follow_the_name
server/server_name                      nginx_least_conn.rs::server_name_picks_the_server_block src/routing/server_names.rs::exact_beats_wildcards_and_longer_wildcards_win
server/location                         nginx_websocket.rs::exact_location_answers_directly nginx_websocket.rs::paths_no_location_covers_get_404 src/config/nginx/tests.rs::location_kinds_and_proxy_pass_uri src/routing/locations.rs::nginx_documentation_example
server/return                           nginx_directives.rs::a_server_level_return_answers_every_request_of_its_server
server/proxy_*                          nginx_least_conn.rs::proxy_set_header_is_inherited_all_or_nothing
server/add_header                       nginx_directives.rs::add_header_marks_good_answers_and_always_every_answer
server/access_log                       src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location container_config.rs::a_server_file_in_conf_d_replaces_the_default_server
server/client_max_body_size             src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location errors.rs::a_body_over_client_max_body_size_gets_413_and_reaches_no_server
server/limit_*                          limits.rs::limit_conn_refuses_requests_over_the_number_in_progress src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
server/pinlb_pin_secret                 pin_guard.rs::nginx_pinlb_pin_secret_needs_signed_values src/config/nginx/variables.rs::geo_map_and_variable_pins_translate
server/merge_slashes                    uri_normalization.rs::merge_slashes_off_keeps_runs_of_slashes_as_nginx_does src/config/nginx/setting_tests.rs::merge_slashes_is_read_at_http_and_server_level
server/client_header_timeout                src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::the_whole_head_must_arrive_within_client_header_timeout
server/client_body_timeout                  src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::a_stalled_body_is_closed_after_client_body_timeout
server/send_timeout                         src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::a_client_that_stops_reading_is_closed_after_send_timeout
server/client_header_buffer_size            src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::configured_header_buffers_set_the_limits
server/large_client_header_buffers          src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::configured_header_buffers_set_the_limits
server/keepalive_requests                   src/config/nginx/client.rs::servers_inherit_client_limits_from_http_and_override_them http1_limits.rs::keepalive_requests_closes_the_connection_after_that_many
http/acme_issuer                        acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate acme.rs::bad_acme_input_is_one_line_with_file_and_line src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/uri                         acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate acme.rs::bad_acme_input_is_one_line_with_file_and_line src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/contact                     acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/state_path                  acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate acme.rs::bad_acme_input_is_one_line_with_file_and_line src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/accept_terms_of_service     acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate acme.rs::bad_acme_input_is_one_line_with_file_and_line src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/ssl_trusted_certificate     acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults
acme_issuer/ssl_verify                  src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
acme_issuer/challenge                   src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults src/config/nginx/acme.rs::unsupported_issuer_settings_are_refused_by_name acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
acme_issuer/renew_before_expiry         src/config/nginx/acme.rs::issuer_directives_translate_with_the_modules_defaults src/tls/acme/schedule.rs::renewal_comes_at_two_thirds_or_a_month_before_expiry acme.rs::ssl_verify_off_challenge_and_renew_before_expiry_take_effect
server/acme_certificate                 acme.rs::pebble_issues_renews_and_a_restart_serves_the_stored_certificate acme.rs::bad_acme_input_is_one_line_with_file_and_line src/config/nginx/acme.rs::explicit_identifiers_and_key_win_over_server_names
location/proxy_pass                     nginx_tutorial.rs::tutorial_balances_round_robin src/config/nginx/tests.rs::location_kinds_and_proxy_pass_uri src/proxy/headers.rs::proxy_pass_uri_replaces_the_location_prefix
location/proxy_ssl_server_name          nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
location/proxy_ssl_name                 nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
location/proxy_ssl_verify               nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
location/proxy_ssl_trusted_certificate  nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
location/proxy_set_header               nginx_tutorial.rs::tutorial_sends_its_forwarding_headers nginx_tutorial.rs::without_proxy_set_header_host_is_the_upstream_name
location/proxy_connect_timeout          src/config/nginx/tests.rs::proxy_settings_inherit_from_http_to_location errors.rs::a_connect_that_hangs_gives_up_after_the_connect_timeout
location/proxy_read_timeout             src/config/nginx/tests.rs::proxy_settings_inherit_from_http_to_location errors.rs::a_slow_server_gives_504_after_the_read_timeout websocket.rs::idle_websocket_is_closed_after_the_configured_idle_limit
location/proxy_send_timeout             src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location errors.rs::an_upload_the_server_does_not_read_gives_504_after_the_send_timeout
location/proxy_next_upstream            nginx_least_conn.rs::a_503_moves_the_request_to_the_next_server_within_the_tries
location/proxy_next_upstream_tries      nginx_least_conn.rs::a_503_moves_the_request_to_the_next_server_within_the_tries src/config/nginx/tests.rs::generated_configs_translate_as_written retry.rs::next_upstream_tries_bounds_the_attempts
location/grpc_pass                      src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate grpc.rs::grpc_pass_speaks_h2c_to_the_servers_balances_and_returns_the_trailers grpc.rs::grpcs_speaks_http2_over_tls_to_the_servers_and_to_a_tls_client
location/grpc_set_header                src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate grpc.rs::grpc_pass_speaks_h2c_to_the_servers_balances_and_returns_the_trailers
location/grpc_connect_timeout           src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate errors.rs::a_connect_that_hangs_gives_up_after_the_connect_timeout
location/grpc_read_timeout              src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate errors.rs::a_slow_server_gives_504_after_the_read_timeout
location/grpc_send_timeout              src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate errors.rs::an_upload_the_server_does_not_read_gives_504_after_the_send_timeout
location/grpc_next_upstream             src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate nginx_least_conn.rs::a_503_moves_the_request_to_the_next_server_within_the_tries
location/grpc_next_upstream_tries       src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate retry.rs::next_upstream_tries_bounds_the_attempts
location/grpc_ssl_server_name           src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections
location/grpc_ssl_name                  src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections grpc.rs::grpcs_speaks_http2_over_tls_to_the_servers_and_to_a_tls_client
location/grpc_ssl_verify                src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections grpc.rs::grpcs_speaks_http2_over_tls_to_the_servers_and_to_a_tls_client
location/grpc_ssl_trusted_certificate   src/config/nginx/grpc.rs::grpc_pass_and_grpc_settings_translate nginx_tls.rs::proxy_pass_https_sends_sni_verifies_the_server_and_pools_connections grpc.rs::grpcs_speaks_http2_over_tls_to_the_servers_and_to_a_tls_client
location/return                         nginx_websocket.rs::exact_location_answers_directly nginx_least_conn.rs::server_name_picks_the_server_block
location/add_header                     nginx_directives.rs::add_header_marks_good_answers_and_always_every_answer src/proxy/answer.rs::add_header_skips_error_statuses_unless_always
location/access_log                     src/config/nginx/tests.rs::map_and_log_format_and_main_directives_translate src/config/nginx/setting_tests.rs::settings_inherit_from_http_to_server_to_location observe.rs::access_log_lines_parse_into_the_request_facts
location/client_max_body_size           src/config/nginx/tests.rs::proxy_settings_inherit_from_http_to_location errors.rs::a_body_over_client_max_body_size_gets_413_and_reaches_no_server
location/set_real_ip_from               nginx_real_ip.rs::a_trusted_proxy_names_the_client_and_an_untrusted_one_cannot nginx_real_ip.rs::location_settings_apply_when_the_server_found_nothing src/config/nginx/real_ip.rs::realip_translates_with_nginx_inheritance
location/real_ip_header                 nginx_real_ip.rs::without_recursion_the_last_hop_is_the_client_and_x_real_ip_is_the_default
location/real_ip_recursive              nginx_real_ip.rs::a_trusted_proxy_names_the_client_and_an_untrusted_one_cannot
location/limit_req                      limits.rs::burst_with_nodelay_passes_at_once_then_refuses_with_503_until_the_bucket_leaks limits.rs::without_nodelay_requests_over_the_rate_wait_their_turn limits.rs::delay_n_lets_the_first_n_excess_requests_through_at_once src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_conn                     limits.rs::limit_conn_refuses_requests_over_the_number_in_progress src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_req_status               limits.rs::burst_with_nodelay_passes_at_once_then_refuses_with_503_until_the_bucket_leaks src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_conn_status              limits.rs::limit_conn_refuses_requests_over_the_number_in_progress src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_req_log_level            limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_conn_log_level           limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_req_dry_run              limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/limit_conn_dry_run             limits.rs::dry_run_counts_what_it_would_do_but_lets_everything_through src/config/nginx/limits.rs::zones_and_limits_translate_with_nginx_inheritance
location/pinlb_pin_secret               pin_guard.rs::nginx_pinlb_pin_secret_needs_signed_values src/config/nginx/variables.rs::geo_map_and_variable_pins_translate
location/if                             nginx_tutorial.rs::tutorial_pins_by_header_and_by_cookie nginx_tutorial.rs::tutorial_last_matching_if_wins_so_the_cookie_beats_the_header
location/health_check                   src/config/nginx/tests.rs::health_check_attaches_to_the_location_upstream nginx_directives.rs::error_log_writes_from_its_level_up
";

/// The test that a config with every directive "accepted, no effect" passes `pinlb -t`
/// and serves, and that config.
const ACCEPTED_PROOF: &str =
    "nginx_config.rs::every_directive_accepted_without_effect_passes_t_and_serves";
const ACCEPTED_CONFIG: &str = "tests/fixtures/nginx/accepted-no-effect.conf";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The rows of the first table after `heading` whose header row starts with `header`,
/// each as its cells (`\|` unescaped), without the header and separator rows.
fn table(readme: &str, heading: &str, header: &str) -> Vec<Vec<String>> {
    let section = readme
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no heading {heading:?}"))
        .1;
    let mut lines = section.lines().skip_while(|l| !l.starts_with(header));
    assert!(
        lines.next().is_some(),
        "no table {header:?} under {heading:?}"
    );
    lines
        .skip(1)
        .take_while(|l| l.starts_with('|'))
        .map(cells)
        .collect()
}

/// The cells of one table row: split on `|` except `\|`.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim().trim_start_matches('|');
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = vec![String::new()];
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                out.last_mut().unwrap().push('|');
                chars.next();
            }
            '|' => out.push(String::new()),
            _ => out.last_mut().unwrap().push(c),
        }
    }
    out.into_iter().map(|c| c.trim().to_string()).collect()
}

/// The directives a cell of the nginx table names: the first word of each backticked
/// item outside parentheses (items inside them are values, as in `map` (`~` keys)).
fn directive_names(cell: &str) -> Vec<String> {
    let (mut names, mut code, mut depth) = (Vec::new(), None::<String>, 0usize);
    for c in cell.chars() {
        match (c, code.as_mut()) {
            ('`', Some(item)) => {
                let word = item.split_whitespace().next().unwrap_or("").to_string();
                if depth == 0 && !word.is_empty() && !names.contains(&word) {
                    names.push(word);
                }
                code = None;
            }
            (_, Some(item)) => item.push(c),
            ('`', None) => code = Some(String::new()),
            ('(', None) => depth += 1,
            (')', None) => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    names
}

/// The JSON keys of the README's table, in order; a key cell must be one `path`.
fn json_keys(readme: &str, problems: &mut Vec<String>) -> Vec<String> {
    let rows = table(
        readme,
        "## Native JSON configuration",
        "| key | meaning | default |",
    );
    let mut keys = Vec::new();
    for row in rows {
        let key = row[0].strip_prefix('`').and_then(|k| k.strip_suffix('`'));
        match key.filter(|k| !k.is_empty() && !k.contains(['`', ' '])) {
            Some(key) if row.len() == 3 => keys.push(key.to_string()),
            _ => problems.push(format!(
                "README JSON table: a row needs one `key.path` and three cells: {row:?}"
            )),
        }
    }
    keys
}

/// The nginx table's translated directives (`CONTEXT/NAME`) and accepted ones
/// (`(CONTEXT, NAME)`).
fn nginx_directives(readme: &str) -> (Vec<String>, Vec<(String, String)>) {
    let rows = table(
        readme,
        "## nginx.conf: the load-balancing subset",
        "| context | translated | accepted, no effect |",
    );
    let (mut translated, mut accepted) = (Vec::new(), Vec::new());
    for row in rows {
        assert_eq!(row.len(), 3, "nginx table row {row:?}");
        let context = &row[0];
        for name in directive_names(&row[1]) {
            translated.push(format!("{context}/{name}"));
        }
        for name in directive_names(&row[2]) {
            accepted.push((context.clone(), name));
        }
    }
    (translated, accepted)
}

/// `PROOFS` as key → tests, with a problem for each malformed or repeated line.
fn proofs(problems: &mut Vec<String>) -> BTreeMap<String, Vec<String>> {
    let mut map = BTreeMap::new();
    for line in PROOFS.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_whitespace();
        let key = words.next().unwrap().to_string();
        let tests: Vec<String> = words.map(String::from).collect();
        if tests.is_empty() {
            problems.push(format!("PROOFS: {key} names no test"));
        }
        if map.insert(key.clone(), tests).is_some() {
            problems.push(format!("PROOFS: {key} has two lines"));
        }
    }
    map
}

/// Source files, read once.
#[derive(Default)]
struct Sources(BTreeMap<PathBuf, Option<String>>);

impl Sources {
    /// Whether `proof` (`FILE.rs::TEST` or `src/PATH.rs::TEST`) names a test function
    /// that exists: a `fn TEST(` with `#[test]` among the attributes above it.
    fn has_test(&mut self, proof: &str) -> Result<(), String> {
        let (file, name) = proof
            .split_once("::")
            .filter(|(f, n)| f.ends_with(".rs") && !n.is_empty())
            .ok_or_else(|| format!("\"{proof}\" is not FILE.rs::TEST"))?;
        let path = match file.starts_with("src/") {
            true => root().join(file),
            false => root().join("tests").join(file),
        };
        let text = self
            .0
            .entry(path.clone())
            .or_insert_with(|| std::fs::read_to_string(&path).ok())
            .as_deref()
            .ok_or_else(|| format!("{proof}: there is no {}", path.display()))?;
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        let is_test = |at: usize| {
            lines[..at]
                .iter()
                .rev()
                .take_while(|l| l.starts_with("#[") || l.starts_with("///"))
                .any(|l| l.starts_with("#[") && l.ends_with("test]"))
        };
        let found = lines.iter().enumerate().any(|(i, l)| {
            let after = l.strip_prefix("fn ").and_then(|l| l.strip_prefix(name));
            after.is_some_and(|rest| rest.starts_with('(')) && is_test(i)
        });
        match found {
            true => Ok(()),
            false => Err(format!(
                "{proof}: no #[test] fn {name} in {}",
                path.display()
            )),
        }
    }
}

/// Where a proof's test lives: an integration test, an nginx-config integration test,
/// or a unit test of the nginx translation.
fn integration(proof: &str) -> bool {
    !proof.starts_with("src/")
}
fn nginx_integration(proof: &str) -> bool {
    proof.starts_with("nginx_") || proof.starts_with("container_config.rs::")
}
fn nginx_translation(proof: &str) -> bool {
    proof.starts_with("src/config/nginx/")
}

#[test]
fn every_documented_setting_has_a_test_that_shows_its_effect() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut problems = Vec::new();
    let json = json_keys(&readme, &mut problems);
    let (nginx, _) = nginx_directives(&readme);
    assert!(json.len() >= 40, "only {} JSON keys found", json.len());
    assert!(
        nginx.len() >= 40,
        "only {} nginx directives found",
        nginx.len()
    );
    let proofs = proofs(&mut problems);
    let mut sources = Sources::default();
    let documented: BTreeSet<&String> = json.iter().chain(&nginx).collect();
    for key in json.iter().chain(&nginx) {
        let Some(tests) = proofs.get(key) else {
            problems.push(format!(
                "{key}: no line in PROOFS names a test that shows its effect"
            ));
            continue;
        };
        let enough = match key.contains('/') {
            false => tests.iter().any(|t| integration(t)),
            true => {
                tests.iter().any(|t| nginx_integration(t))
                    || (tests.iter().any(|t| nginx_translation(t))
                        && tests.iter().any(|t| integration(t)))
            }
        };
        if !enough {
            problems.push(match key.contains('/') {
                false => format!("{key}: no integration test among its proofs"),
                true => format!(
                    "{key}: needs an nginx-config test, or a translation test and a behaviour test"
                ),
            });
        }
    }
    for (key, tests) in &proofs {
        if !documented.contains(key) {
            problems.push(format!("PROOFS: {key} is not in README.md's tables"));
        }
        for test in tests {
            if let Err(e) = sources.has_test(test) {
                problems.push(e);
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every `(context, name)` of the nginx directives in `file`; `main` is the top level.
fn directives_in(file: &Path) -> BTreeSet<(String, String)> {
    fn walk(
        context: &str,
        directives: &[pinlb::config::nginx::parser::Directive],
        out: &mut BTreeSet<(String, String)>,
    ) {
        for d in directives {
            out.insert((context.to_string(), d.name.clone()));
            if let Some(block) = &d.block {
                walk(&d.name, block, out);
            }
        }
    }
    let directives = pinlb::config::nginx::parser::parse_file(file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = BTreeSet::new();
    walk("main", &directives, &mut out);
    out
}

#[test]
fn every_directive_accepted_without_effect_is_in_the_config_that_shows_it() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let (_, accepted) = nginx_directives(&readme);
    assert!(accepted.len() >= 20, "only {} found", accepted.len());
    let written = directives_in(&root().join(ACCEPTED_CONFIG));
    let missing: Vec<String> = accepted
        .iter()
        .filter(|(context, name)| {
            let prefix = name.strip_suffix('*');
            !written
                .iter()
                .any(|(c, n)| c == context && prefix.map_or(n == name, |p| n.starts_with(p)))
        })
        .map(|(context, name)| format!("{context}/{name}"))
        .collect();
    assert!(
        missing.is_empty(),
        "not in {ACCEPTED_CONFIG}: {}",
        missing.join(", ")
    );
    Sources::default().has_test(ACCEPTED_PROOF).unwrap();
}

#[test]
fn directive_names_are_the_backticked_items_outside_parentheses() {
    assert_eq!(
        directive_names(
            "`map` (exact and `~`/`~*` keys, `default`), `return CODE [TEXT|URL]` or `return URL`, \
             `if ($http_NAME = \"V\") { proxy_pass ...; }` (pins), the inherited `proxy_*` and `add_header`"
        ),
        ["map", "return", "if", "proxy_*", "add_header"]
    );
    assert_eq!(
        cells(r"| main | `worker_processes N\|auto`, `pid` | `user` |"),
        ["main", "`worker_processes N|auto`, `pid`", "`user`"]
    );
}
