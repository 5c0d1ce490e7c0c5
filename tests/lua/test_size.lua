-- mg.size / mg.format_size through the real mgrun binary.
local lu = require("luaunit")

TestSize = {}

function TestSize:test_units_are_powers_of_1024()
  lu.assertEquals(mg.size("2 GB"), 2147483648) -- the seed's "2 GB"
  lu.assertEquals(mg.size("1.5G"), 1610612736)
  lu.assertEquals(mg.size("1KiB"), 1024)
  lu.assertEquals(mg.size("1kb"), 1024)
  lu.assertEquals(mg.size("3M"), 3 * 1024 * 1024)
  lu.assertEquals(mg.size("1T"), 1024 ^ 4 // 1)
  lu.assertEquals(mg.size("512"), 512)
  lu.assertEquals(mg.size("17B"), 17)
  lu.assertEquals(mg.size(4096), 4096)
  lu.assertEquals(mg.size(0), 0)
  lu.assertEquals(mg.size("9223372036854775807"), math.maxinteger)
end

function TestSize:test_percent_of_effective_memory()
  local eff = mg.memory().effective_total
  lu.assertEquals(mg.size("100%"), eff)
  lu.assertTrue(math.abs(mg.size("50%") - eff // 2) <= 1)
end

function TestSize:test_bad_sizes_raise_quoting_input()
  local bad = { "", "   ", "-1", "-0.5G", "nan", "NaN", "inf", "-inf",
                "12Gx", "1.2.3", "5Q", "0x10", "G", "1e3",
                "9223372036854775808", "10000000T", "8E" }
  for _, s in ipairs(bad) do
    local ok, err = pcall(mg.size, s)
    lu.assertFalse(ok, "accepted " .. s)
    lu.assertStrContains(err, '"' .. s .. '"')
    lu.assertStrContains(err, "KiB") -- says what is accepted
  end
end

function TestSize:test_bad_numbers_raise()
  for _, v in ipairs({ -1, 0 / 0, math.huge, -math.huge, 1.5 }) do
    lu.assertFalse(pcall(mg.size, v), "accepted " .. tostring(v))
  end
  lu.assertErrorMsgContains("bad argument #1", mg.size, {})
  lu.assertErrorMsgContains("bad argument #1", mg.size)
end

function TestSize:test_format_size()
  lu.assertEquals(mg.format_size(1610612736), "1.50 GiB")
  lu.assertEquals(mg.format_size(0), "0 B")
  lu.assertEquals(mg.format_size(512), "512 B")
  lu.assertEquals(mg.format_size(1024), "1.00 KiB")
  lu.assertEquals(mg.format_size("20G"), "20.00 GiB")
  lu.assertErrorMsgContains("negative", mg.format_size, -1)
end

function TestSize:test_nul_bytes_are_not_ignored()
  lu.assertErrorMsgContains("NUL", mg.size, "1G\0junk")
  lu.assertErrorMsgContains("NUL", mg.size, "1\0G")
end

os.exit(lu.LuaUnit.run(table.unpack(arg)))
