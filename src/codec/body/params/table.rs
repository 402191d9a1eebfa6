//! Every terminal parameter id of JT/T 808-2019 (with the 2013 ones it dropped or kept) and the
//! JT/T 1078-2016 audio/video parameters 0x0075-0x007C: id, snake_case name, type.
//!
//! Sorted by id (looked up by binary search). 0x0111-0x01FF, the "other CAN id" settings, share
//! one row's type (BYTE[8]) and are named `can_id_setting_0xNNNN` by [`lookup`]'s caller.

/// The wire type of a parameter value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// BYTE.
    Byte,
    /// WORD.
    Word,
    /// DWORD.
    Dword,
    /// STRING (GBK), any length.
    Text,
    /// BYTE[n].
    Bytes(usize),
    /// 1078 0x0075: audio/video parameters (21 bytes).
    AvParams,
    /// 1078 0x0076: audio/video channel list.
    AvChannels,
    /// 1078 0x0077: per-channel video parameters.
    ChannelVideo,
    /// 1078 0x0079: special alarm recording parameters (3 bytes).
    AlarmRecording,
    /// 1078 0x007B: image analysis alarm parameters (2 bytes).
    ImageAnalysis,
    /// 1078 0x007C: terminal sleep wake-up mode (20 bytes).
    Wake,
}

impl ParamType {
    /// The snake_case type name shown in JSON.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::Byte => "byte",
            ParamType::Word => "word",
            ParamType::Dword => "dword",
            ParamType::Text => "string",
            ParamType::Bytes(_) => "bytes",
            ParamType::AvParams => "av_params",
            ParamType::AvChannels => "av_channels",
            ParamType::ChannelVideo => "channel_video",
            ParamType::AlarmRecording => "alarm_recording",
            ParamType::ImageAnalysis => "image_analysis",
            ParamType::Wake => "wake",
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParamDef {
    /// Parameter id.
    pub id: u32,
    /// snake_case name.
    pub name: &'static str,
    /// Its type.
    pub ty: ParamType,
    /// Edition note: `"2019"` added in 2019, `"2013"` only before 2019, `"jt1078"`, or `""`.
    pub edition: &'static str,
}

macro_rules! params {
    ($($id:literal $name:ident $ty:expr, $ed:literal;)*) => {
        /// The table, sorted by id.
        pub static PARAMS: &[ParamDef] = &[$(ParamDef { id: $id, name: stringify!($name), ty: $ty, edition: $ed },)*];
    };
}

use ParamType::*;

params! {
    0x0001 heartbeat_interval Dword, "";
    0x0002 tcp_reply_timeout Dword, "";
    0x0003 tcp_retransmits Dword, "";
    0x0004 udp_reply_timeout Dword, "";
    0x0005 udp_retransmits Dword, "";
    0x0006 sms_reply_timeout Dword, "";
    0x0007 sms_retransmits Dword, "";
    0x0010 main_server_apn Text, "";
    0x0011 main_server_user Text, "";
    0x0012 main_server_password Text, "";
    0x0013 main_server_address Text, "";
    0x0014 backup_server_apn Text, "";
    0x0015 backup_server_user Text, "";
    0x0016 backup_server_password Text, "";
    0x0017 backup_server_address Text, "";
    0x0018 server_tcp_port Dword, "";
    0x0019 server_udp_port Dword, "";
    0x001A ic_auth_main_server Text, "";
    0x001B ic_auth_tcp_port Dword, "";
    0x001C ic_auth_udp_port Dword, "";
    0x001D ic_auth_backup_server Text, "";
    0x0020 report_strategy Dword, "";
    0x0021 report_scheme Dword, "";
    0x0022 no_driver_report_interval Dword, "";
    0x0023 slave_server_apn Text, "2019";
    0x0024 slave_server_user Text, "2019";
    0x0025 slave_server_password Text, "2019";
    0x0026 slave_server_backup_address Text, "2019";
    0x0027 sleep_report_interval Dword, "";
    0x0028 emergency_report_interval Dword, "";
    0x0029 default_report_interval Dword, "";
    0x002C default_report_distance Dword, "";
    0x002D no_driver_report_distance Dword, "";
    0x002E sleep_report_distance Dword, "";
    0x002F emergency_report_distance Dword, "";
    0x0030 corner_resend_angle Dword, "";
    0x0031 fence_radius Word, "";
    0x0032 illegal_driving_period Bytes(4), "2019";
    0x0040 monitor_platform_phone Text, "";
    0x0041 reset_phone Text, "";
    0x0042 factory_reset_phone Text, "";
    0x0043 platform_sms_phone Text, "";
    0x0044 sms_alarm_phone Text, "";
    0x0045 answer_strategy Dword, "";
    0x0046 max_call_time Dword, "";
    0x0047 monthly_call_time Dword, "";
    0x0048 listen_phone Text, "";
    0x0049 privileged_sms_phone Text, "";
    0x0050 alarm_mask Dword, "";
    0x0051 alarm_sms_switch Dword, "";
    0x0052 alarm_photo_switch Dword, "";
    0x0053 alarm_photo_store Dword, "";
    0x0054 key_alarm_flags Dword, "";
    0x0055 max_speed Dword, "";
    0x0056 overspeed_duration Dword, "";
    0x0057 continuous_driving_limit Dword, "";
    0x0058 daily_driving_limit Dword, "";
    0x0059 min_rest Dword, "";
    0x005A max_parking Dword, "";
    0x005B overspeed_warning_margin Word, "";
    0x005C fatigue_warning_margin Word, "";
    0x005D collision_alarm Word, "";
    0x005E rollover_angle Word, "";
    0x0064 timed_photo Dword, "";
    0x0065 distance_photo Dword, "";
    0x0070 image_quality Dword, "";
    0x0071 brightness Dword, "";
    0x0072 contrast Dword, "";
    0x0073 saturation Dword, "";
    0x0074 chroma Dword, "";
    0x0075 av_params AvParams, "jt1078";
    0x0076 av_channels AvChannels, "jt1078";
    0x0077 channel_video_params ChannelVideo, "jt1078";
    0x0079 alarm_recording AlarmRecording, "jt1078";
    0x007A video_alarm_mask Dword, "jt1078";
    0x007B image_analysis_alarm ImageAnalysis, "jt1078";
    0x007C sleep_wake Wake, "jt1078";
    0x0080 odometer Dword, "";
    0x0081 province Word, "";
    0x0082 city Word, "";
    0x0083 plate Text, "";
    0x0084 plate_color Byte, "";
    0x0090 gnss_mode Byte, "";
    0x0091 gnss_baud_rate Byte, "";
    0x0092 gnss_output_rate Byte, "";
    0x0093 gnss_sample_rate Dword, "";
    0x0094 gnss_upload_mode Byte, "";
    0x0095 gnss_upload_setting Dword, "";
    0x0100 can1_sample_interval Dword, "";
    0x0101 can1_upload_interval Word, "";
    0x0102 can2_sample_interval Dword, "";
    0x0103 can2_upload_interval Word, "";
    0x0110 can_id_setting Bytes(8), "";
}

/// The row for `id`, or `None` for an unknown or vendor id. 0x0111-0x01FF give the
/// `can_id_setting` row (BYTE[8]).
pub fn lookup(id: u32) -> Option<&'static ParamDef> {
    let id = if (0x0111..=0x01FF).contains(&id) { 0x0110 } else { id };
    PARAMS.binary_search_by_key(&id, |d| d.id).ok().map(|i| &PARAMS[i])
}

/// The row named `name`.
pub fn by_name(name: &str) -> Option<&'static ParamDef> {
    PARAMS.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_with_unique_ids_and_names() {
        assert!(PARAMS.windows(2).all(|w| w[0].id < w[1].id));
        let mut names: Vec<_> = PARAMS.iter().map(|d| d.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PARAMS.len());
        assert_eq!(lookup(0x0150).map(|d| d.ty), Some(Bytes(8)));
        assert_eq!(lookup(0x0078), None);
        assert_eq!(lookup(0xF001), None);
    }
}
