-- The rows forwarder.TestQueriesDocAnswers wrote through the forwarder for docs/queries.md
-- (read back with FINAL). {T-n}: n ns before the data was written. Regenerate with
-- HOLDFAST_UPDATE_GOLDEN=1 go test ./forwarder -run TestQueriesDocAnswers
INSERT INTO holdfast.fields_string (timeseries_name, timeseries_key, field_name, field_value) VALUES
('virtual_machine:bytes_sent', 3759164262607458213, 'project', 'alpha'),
('virtual_machine:cpu_busy', 11863216281730747712, 'project', 'alpha'),
('virtual_machine:cpu_busy', 12832626743442282567, 'project', 'beta'),
('virtual_machine:cpu_busy', 2182525071101237568, 'project', 'alpha'),
('virtual_machine:cpu_busy', 7446714479049547472, 'project', 'alpha'),
('virtual_machine:cpu_busy', 9462221960969971677, 'project', 'alpha'),
('virtual_machine:io_latency', 12845687270277944318, 'project', 'alpha'),
('virtual_machine:io_latency', 478027661675453262, 'project', 'alpha');
INSERT INTO holdfast.fields_u32 (timeseries_name, timeseries_key, field_name, field_value) VALUES
('virtual_machine:cpu_busy', 11863216281730747712, 'cpu', 0),
('virtual_machine:cpu_busy', 12832626743442282567, 'cpu', 0),
('virtual_machine:cpu_busy', 2182525071101237568, 'cpu', 0),
('virtual_machine:cpu_busy', 7446714479049547472, 'cpu', 0),
('virtual_machine:cpu_busy', 9462221960969971677, 'cpu', 1);
INSERT INTO holdfast.fields_uuid (timeseries_name, timeseries_key, field_name, field_value) VALUES
('virtual_machine:bytes_sent', 3759164262607458213, 'instance_id', '11111111-1111-4111-8111-111111111111'),
('virtual_machine:cpu_busy', 11863216281730747712, 'instance_id', '44444444-4444-4444-8444-444444444444'),
('virtual_machine:cpu_busy', 12832626743442282567, 'instance_id', '33333333-3333-4333-8333-333333333333'),
('virtual_machine:cpu_busy', 2182525071101237568, 'instance_id', '22222222-2222-4222-8222-222222222222'),
('virtual_machine:cpu_busy', 7446714479049547472, 'instance_id', '11111111-1111-4111-8111-111111111111'),
('virtual_machine:cpu_busy', 9462221960969971677, 'instance_id', '11111111-1111-4111-8111-111111111111'),
('virtual_machine:io_latency', 12845687270277944318, 'instance_id', '22222222-2222-4222-8222-222222222222'),
('virtual_machine:io_latency', 478027661675453262, 'instance_id', '11111111-1111-4111-8111-111111111111');
INSERT INTO holdfast.measurements_cumulative_u64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, datum) VALUES
('virtual_machine:bytes_sent', 3759164262607458213, {T-180000000000}, {T-280000000000}, 900),
('virtual_machine:bytes_sent', 3759164262607458213, {T-240000000000}, {T-280000000000}, 300),
('virtual_machine:bytes_sent', 3759164262607458213, {T-300000000000}, {T-3600000000000}, 2200),
('virtual_machine:bytes_sent', 3759164262607458213, {T-360000000000}, {T-3600000000000}, 1600),
('virtual_machine:bytes_sent', 3759164262607458213, {T-420000000000}, {T-3600000000000}, 1000),
('virtual_machine:bytes_sent', 3759164262607458213, {T-660000000000}, {T-3600000000000}, 400);
INSERT INTO holdfast.measurements_f64 (timeseries_name, timeseries_key, timestamp_ns, datum) VALUES
('virtual_machine:cpu_busy', 11863216281730747712, {T-120000000000}, 71),
('virtual_machine:cpu_busy', 11863216281730747712, {T-30000000000}, 74),
('virtual_machine:cpu_busy', 11863216281730747712, {T-600000000000}, 70),
('virtual_machine:cpu_busy', 11863216281730747712, {T-60000000000}, 73),
('virtual_machine:cpu_busy', 11863216281730747712, {T-90000000000}, 72),
('virtual_machine:cpu_busy', 12832626743442282567, {T-120000000000}, 91),
('virtual_machine:cpu_busy', 12832626743442282567, {T-30000000000}, 94),
('virtual_machine:cpu_busy', 12832626743442282567, {T-600000000000}, 90),
('virtual_machine:cpu_busy', 12832626743442282567, {T-60000000000}, 93),
('virtual_machine:cpu_busy', 12832626743442282567, {T-90000000000}, 92),
('virtual_machine:cpu_busy', 2182525071101237568, {T-120000000000}, 61),
('virtual_machine:cpu_busy', 2182525071101237568, {T-30000000000}, 64),
('virtual_machine:cpu_busy', 2182525071101237568, {T-600000000000}, 60),
('virtual_machine:cpu_busy', 2182525071101237568, {T-60000000000}, 63),
('virtual_machine:cpu_busy', 2182525071101237568, {T-90000000000}, 62),
('virtual_machine:cpu_busy', 7446714479049547472, {T-120000000000}, 20),
('virtual_machine:cpu_busy', 7446714479049547472, {T-30000000000}, 50),
('virtual_machine:cpu_busy', 7446714479049547472, {T-600000000000}, 10),
('virtual_machine:cpu_busy', 7446714479049547472, {T-60000000000}, 40),
('virtual_machine:cpu_busy', 7446714479049547472, {T-90000000000}, 30),
('virtual_machine:cpu_busy', 9462221960969971677, {T-120000000000}, 15),
('virtual_machine:cpu_busy', 9462221960969971677, {T-30000000000}, 45),
('virtual_machine:cpu_busy', 9462221960969971677, {T-600000000000}, 5),
('virtual_machine:cpu_busy', 9462221960969971677, {T-60000000000}, 35),
('virtual_machine:cpu_busy', 9462221960969971677, {T-90000000000}, 25);
INSERT INTO holdfast.measurements_histogram_u64 (timeseries_name, timeseries_key, timestamp_ns, start_time_ns, bins, counts, min, max, sum_of_samples) VALUES
('virtual_machine:io_latency', 12845687270277944318, {T-420000000000}, {T-3600000000000}, [0,1000,2000,4000,8000], [0,10,10,0,0], 1500, 3000, 40000),
('virtual_machine:io_latency', 12845687270277944318, {T-60000000000}, {T-300000000000}, [0,1000,2000,4000,8000], [0,10,30,5,5], 1500, 10000, 150000),
('virtual_machine:io_latency', 12845687270277944318, {T-660000000000}, {T-3600000000000}, [0,1000,2000,4000,8000], [0,5,5,0,0], 1500, 3000, 20000),
('virtual_machine:io_latency', 478027661675453262, {T-420000000000}, {T-3600000000000}, [0,1000,2000,4000,8000], [0,20,20,5,5], 1200, 12000, 175000),
('virtual_machine:io_latency', 478027661675453262, {T-60000000000}, {T-3600000000000}, [0,1000,2000,4000,8000], [0,40,40,10,10], 1200, 12000, 350000);
INSERT INTO holdfast.timeseries_schema (timeseries_name, fields_name, fields_type, fields_source, datum_type, version, created_ns) VALUES
('virtual_machine:bytes_sent', ['instance_id','project'], ['uuid','string'], ['target','target'], 'cumulative_u64', 1383087613, 0),
('virtual_machine:cpu_busy', ['cpu','instance_id','project'], ['u32','uuid','string'], ['metric','target','target'], 'f64', 789037279, 0),
('virtual_machine:io_latency', ['instance_id','project'], ['uuid','string'], ['target','target'], 'histogram_u64', 1383087613, 0);
